// Stage `weight_sync`: hands the learner's new parameters to rollout and
// eval with their version. In one process the message is a reference to
// the learner's snapshot (no copy when colocated; consumers on another
// device copy into their own model when they apply it). To another
// process the tensors travel inside the message through the host, or with
// transport = "nccl" GPU to GPU beside it (actors/bulk_transfer.hpp). It
// keeps the updates its back-edge consumers may still need after a
// checkpoint (context.back_edge_history of them) in its state, so a
// resumed rollout samples with the weights the uninterrupted run's did.
// The learner picks the format (full, packed codes for QAT, LoRA-only for
// adapters).
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>

#include "actors/bulk_transfer.hpp"
#include "actors/payloads.hpp"
#include "actors/stage_factories.hpp"
#include "actors/stage_options.hpp"
#include "dsl/pipeline_spec.hpp"
#include "models/io/safetensors.hpp"
#include "runtime/stage.hpp"

namespace qerl::actors {
namespace {

namespace fs = std::filesystem;

class WeightSyncStage final : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& context) override {
    const auto& stage = *context.stage;
    name_ = stage.name;
    nccl_ = stage.choice_option<SyncTransport>("transport") == SyncTransport::nccl;
    if (nccl_ && !bulk::available())
      throw Error("stage '" + stage.name + "': transport = \"nccl\" needs a build with NCCL (QERL_CUDA on a host "
                  "with NCCL); use \"auto\"");
    stage.choice_option<SyncFormat>("format");  // "auto" only: follows [quantization]
    history_ = context.back_edge_history;
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    const auto params = input.get<PolicyUpdate>("params");
    auto weights = std::make_shared<WeightsUpdate>();
    weights->version = params->version;
    weights->format = params->format;
    weights->tensors = params->tensors;
    weights->beside = nccl_;
    double bytes = 0;
    std::vector<torch::Tensor> list;
    for (const auto& [name, t] : *params->tensors) {
      if (nccl_ && !t.is_cuda())
        throw Error("stage '" + name_ + "': transport = \"nccl\" moves GPU tensors; '" + name + "' is on " +
                    t.device().str() + " (put weight_sync in the learner's process and the learner on a GPU, or use "
                    "transport = \"auto\")");
      bytes += static_cast<double>(t.numel() * t.element_size());
      if (nccl_) list.push_back(t);
    }
    if (nccl_) weights->ready = bulk::mark_ready(list);  // the learner's work on them ends here
    if (history_ > 0) {
      recent_.push_back({input.step, weights});
      while (static_cast<int64_t>(recent_.size()) > history_) recent_.pop_front();
    }
    runtime::StepOutput out;
    out.metrics["weight_sync/bytes"] = bytes;
    out.weight_version = params->version;
    out.ports["weights"] = std::move(weights);
    return out;
  }

  // recent.json lists {step, version, format, file}; one safetensors file each.
  void save_state(const fs::path& dir) override {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [step, update] : recent_) {
      const std::string file = "weights_step_" + std::to_string(step) + ".safetensors";
      models::TensorMap cpu;
      for (const auto& [name, t] : *update->tensors) cpu[name] = t.to(torch::kCPU);
      models::write_safetensors(dir / file, cpu);
      list.push_back({{"step", step}, {"version", update->version}, {"format", enum_name(update->format)}, {"file", file}});
    }
    std::ofstream(dir / "recent.json") << list.dump(2) << "\n";
  }

  void load_state(const fs::path& dir) override {
    recent_.clear();
    const fs::path index = dir / "recent.json";
    if (!fs::exists(index)) return;  // saved by a run whose weights had no back-edge
    std::ifstream in(index);
    const auto list = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!list.is_array()) throw Error("checkpoint " + index.string() + ": expected a JSON array");
    for (const auto& entry : list) {
      if (!entry.is_object() || !entry.contains("step") || !entry.contains("version") || !entry.contains("file"))
        throw Error("checkpoint " + index.string() + ": expected entries {\"step\", \"version\", \"file\"}");
      auto update = std::make_shared<WeightsUpdate>();
      update->version = entry["version"].get<int64_t>();
      const std::string format = entry.value("format", std::string("full"));
      const auto parsed = parse_enum<WeightsFormat>(format);
      if (!parsed)
        throw Error("checkpoint " + index.string() + ": format \"" + format + "\"; expected " +
                    enum_choices_text<WeightsFormat>());
      update->format = *parsed;
      update->tensors = std::make_shared<const TensorMap>(
          models::read_safetensors(dir / entry["file"].get<std::string>()).tensors);
      recent_.push_back({entry["step"].get<int64_t>(), std::move(update)});
    }
  }

  std::vector<runtime::RestoredOutput> restored_outputs() override {
    std::vector<runtime::RestoredOutput> out;
    for (const auto& [step, update] : recent_) out.push_back({step, update->version, {{"weights", update}}});
    return out;
  }

 private:
  int64_t history_ = 0;
  std::deque<std::pair<int64_t, std::shared_ptr<const WeightsUpdate>>> recent_;
  std::string name_;
  bool nccl_ = false;
};

}  // namespace

std::unique_ptr<runtime::Stage> make_weight_sync_stage() { return std::make_unique<WeightSyncStage>(); }

}  // namespace qerl::actors
