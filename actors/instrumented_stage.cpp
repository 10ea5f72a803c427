#include "actors/instrumented_stage.hpp"

#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>
#if QERL_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "actors/policy.hpp"
#include "actors/stage_log.hpp"
#include "common/error.hpp"
#include "dsl/pipeline_spec.hpp"

namespace qerl::actors {
namespace {

namespace prof = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;

// "name:step,name:step" -> {(name, step)}; a malformed entry is an error.
std::set<std::pair<std::string, int64_t>> profiled_steps(const char* text) {
  std::set<std::pair<std::string, int64_t>> out;
  std::stringstream list(text);
  std::string item;
  while (std::getline(list, item, ',')) {
    const auto colon = item.rfind(':');
    size_t used = 0;
    int64_t step = -1;
    try {
      if (colon != std::string::npos) step = std::stoll(item.substr(colon + 1), &used);
    } catch (const std::exception&) {
    }
    if (colon == std::string::npos || colon == 0 || step < 0 || used != item.size() - colon - 1)
      throw Error("QERL_TORCH_PROFILE: '" + item + "' is not <stage>:<step> (e.g. learner:5)");
    out.emplace(item.substr(0, colon), step);
  }
  return out;
}

struct ProfileTotal {
  double ms = 0;
  int64_t count = 0;
};

// The `rows` largest entries of `totals`, a line each: "  <ms> ms  x<count>  <name>".
std::string largest(const std::map<std::string, ProfileTotal>& totals, size_t rows) {
  std::vector<std::pair<std::string, ProfileTotal>> sorted(totals.begin(), totals.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  std::ostringstream out;
  for (size_t i = 0; i < std::min(rows, sorted.size()); ++i) {
    std::string name = sorted[i].first;
    if (name.size() > 90) name = name.substr(0, 87) + "...";
    out << "\n  " << sorted[i].second.ms << " ms  x" << sorted[i].second.count << "  " << name;
  }
  return out.str();
}

class InstrumentedStage final : public runtime::Stage {
 public:
  explicit InstrumentedStage(std::unique_ptr<runtime::Stage> inner) : inner_(std::move(inner)) {}

  void setup(const runtime::StageContext& context) override {
    context_ = &context;
    if (const char* text = std::getenv("QERL_TORCH_PROFILE"); text != nullptr && *text != '\0')
      profile_steps_ = profiled_steps(text);
    const torch::Device device = stage_device(context);
    if (device.is_cuda()) cuda_device_ = device.index() < 0 ? 0 : device.index();
    inner_->setup(context);
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
#if QERL_CUDA
    namespace allocator = c10::cuda::CUDACachingAllocator;
    if (cuda_device_ >= 0) allocator::resetPeakStats(static_cast<c10::DeviceIndex>(cuda_device_));
#endif
    runtime::StepOutput out = profile_steps_.count({context_->stage->name, input.step}) > 0 && context_->replica == 0
                                  ? profiled_run(input)
                                  : inner_->run(input);
#if QERL_CUDA
    if (cuda_device_ >= 0) {
      const auto stats = allocator::getDeviceStats(static_cast<c10::DeviceIndex>(cuda_device_));
      const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
      const std::string suffix =
          "/" + context_->stage->name + (context_->replica > 0 ? ".r" + std::to_string(context_->replica) : "");
      const double gib = 1 << 30;
      out.metrics["perf/max_memory_allocated_gib" + suffix] = static_cast<double>(stats.allocated_bytes[all].peak) / gib;
      out.metrics["perf/max_memory_reserved_gib" + suffix] = static_cast<double>(stats.reserved_bytes[all].peak) / gib;
    }
#endif
    return out;
  }

  void save_state(const std::filesystem::path& dir) override { inner_->save_state(dir); }
  void load_state(const std::filesystem::path& dir) override { inner_->load_state(dir); }
  std::vector<runtime::RestoredOutput> restored_outputs() override { return inner_->restored_outputs(); }

 private:
  runtime::StepOutput profiled_run(const runtime::StepInput& input) {
    const bool cuda = torch::cuda::is_available();
    std::set<ActivityType> activities{ActivityType::CPU};
    if (cuda) activities.insert(ActivityType::CUDA);
    const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO);
    if (cuda) torch::cuda::synchronize();
    prof::prepareProfiler(config, activities);
    prof::enableProfiler(config, activities);
    const auto start = std::chrono::steady_clock::now();
    runtime::StepOutput out;
    try {
      out = inner_->run(input);
      if (cuda) torch::cuda::synchronize();
    } catch (...) {
      prof::disableProfiler();
      throw;
    }
    const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();
    report(*result, input.step, wall_ms);
    return out;
  }

  void report(prof::ProfilerResult& result, int64_t step, double wall_ms) {
    std::map<std::string, ProfileTotal> kernels, ops;
    double kernel_ms = 0;
    int64_t kernel_count = 0;
    for (const auto& e : result.events()) {
      const double ms = static_cast<double>(e.durationNs()) * 1e-6;
      if (e.deviceType() == c10::DeviceType::CUDA) {
        // GPU activity: kernels, and memcpy / memset entries.
        ProfileTotal& t = kernels[e.name()];
        t.ms += ms, ++t.count;
        kernel_ms += ms, ++kernel_count;
      } else if (e.deviceType() == c10::DeviceType::CPU && e.name().rfind("aten::", 0) == 0) {
        ProfileTotal& t = ops[e.name()];  // inclusive: an op's time contains the ops it calls
        t.ms += ms, ++t.count;
      }
    }
    const std::string name = context_->stage->name;
    std::string trace;
    if (!context_->out_dir.empty()) {
      const auto dir = std::filesystem::path(context_->out_dir) / "profile";
      std::filesystem::create_directories(dir);
      trace = (dir / (name + "-step" + std::to_string(step) + ".json")).string();
      result.save(trace);
    }
    std::ostringstream line;
    line << "profile of step " << step << ": " << wall_ms << " ms wall, " << kernel_count << " GPU activities taking "
         << kernel_ms << " ms" << (trace.empty() ? "" : ", trace " + trace) << "\n top GPU kernels:"
         << largest(kernels, 15) << "\n top operators (CPU, inclusive):" << largest(ops, 15);
    log_info(context_->logger, line.str());
  }

  std::unique_ptr<runtime::Stage> inner_;
  const runtime::StageContext* context_ = nullptr;
  std::set<std::pair<std::string, int64_t>> profile_steps_;
  int cuda_device_ = -1;  // the stage's CUDA device, -1 = not on one
};

}  // namespace

std::unique_ptr<runtime::Stage> instrumented(std::unique_ptr<runtime::Stage> stage) {
  return std::make_unique<InstrumentedStage>(std::move(stage));
}

}  // namespace qerl::actors
