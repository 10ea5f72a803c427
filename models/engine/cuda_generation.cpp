// The CUDA generation backend (generation_backend.hpp): the static-cache
// loop of static_generator.hpp on a stream of its own, each batch bucket's
// decode step captured once as a CUDA graph and replayed, so that a step
// costs one graph launch plus sampling instead of one launch per operation.
// Graphs hold the addresses of the weights and the cache: the backend
// recaptures when a weight tensor moved (updates normally land in place),
// and runs the steps eagerly when the forward has parts a graph cannot hold
// (a host read per layer, as the per-expert MoE loop does).
#include <set>
#include <utility>

#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nvtx3/nvToolsExt.h>

#include "common/error.hpp"
#include "models/engine/generation_backend.hpp"
#include "models/generate/static_generator.hpp"
#include "models/nn/linear.hpp"
#include "models/nn/sparse_moe.hpp"

namespace qerl::models {
namespace {

// Steps of the static cache between two host reads of the sampled tokens.
constexpr int64_t kSyncEvery = 8;

// Decode steps as CUDA graphs, one per (bucket, routing capture). A
// bucket's first step runs eagerly: it creates what the forward makes
// lazily (the rotary table on the device, the stacked experts, library
// workspaces), which a capture must not do. Its second step is captured and
// replayed; later steps replay.
class GraphDecodeStep final : public DecodeStepRunner {
 public:
  DecodeStepOutput step(CausalLMImpl& lm, KVCache& cache, const torch::Tensor& input_ids,
                        bool capture_routing) override {
    const std::pair<int64_t, bool> key{input_ids.size(0), capture_routing};
    if (const auto it = graphs_.find(key); it != graphs_.end()) {
      nvtxRangePushA("qerl decode step");  // what `ncu --nvtx --nvtx-include "qerl decode step/"` profiles
      it->second->graph.replay();
      nvtxRangePop();
      return it->second->out;
    }
    if (warmed_.insert(key).second || !failure_.empty()) return eager_.step(lm, cache, input_ids, capture_routing);
    auto captured = std::make_unique<Captured>();
    captured->pool = at::cuda::graph_pool_handle();
    captured->graph.capture_begin(captured->pool, cudaStreamCaptureModeThreadLocal);
    try {
      captured->out = eager_.step(lm, cache, input_ids, capture_routing);
      captured->graph.capture_end();
    } catch (const std::exception& e) {
      // Nothing ran on the device during the capture: the step runs
      // eagerly, and so do the later ones.
      failure_ = e.what();
      end_failed_capture(*captured, lm.device());
      return eager_.step(lm, cache, input_ids, capture_routing);
    }
    captured->graph.replay();
    return graphs_.emplace(key, std::move(captured)).first->second->out;
  }

  void reset() override {
    graphs_.clear();
    warmed_.clear();
  }

  // Why graphs stopped being captured ("" while they work).
  const std::string& failure() const { return failure_; }

 private:
  struct Captured {
    at::cuda::CUDAGraph graph;
    c10::MempoolId_t pool;
    DecodeStepOutput out;  // lives in the graph's memory pool
  };

  // Ends a capture that threw (in the forward, or in capture_end when the
  // capture was invalidated); the allocator stops serving its pool.
  static void end_failed_capture(Captured& captured, torch::Device device) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
      cudaGraph_t partial = nullptr;
      cudaStreamEndCapture(stream, &partial);
      if (partial != nullptr) cudaGraphDestroy(partial);
    }
    try {  // capture_end may have ended it already
      c10::cuda::CUDACachingAllocator::endAllocateToPool(device.index(), captured.pool);
    } catch (const std::exception&) {
    }
    cudaGetLastError();  // an invalidated capture's error is not sticky: clear it
  }

  EagerDecodeStep eager_;
  std::map<std::pair<int64_t, bool>, std::unique_ptr<Captured>> graphs_;
  std::set<std::pair<int64_t, bool>> warmed_;
  std::string failure_;
};

// Why a CUDA graph cannot hold this model's decode step ("" when it can).
// Refreshes each MoE layer's stacked experts (grouped_on_device).
std::string graph_blocker(CausalLMImpl& lm) {
  for (const auto& item : lm.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    if (const auto* linear = item.value()->as<LinearImpl>()) {
      if (linear->has_weight_hook()) return item.key() + " fake-quantizes its weight (QAT)";
      if (linear->has_input_hook()) return item.key() + " quantizes its input (W4A4)";
    }
    if (auto* moe = item.value()->as<SparseMoeImpl>(); moe != nullptr && !moe->grouped_on_device())
      return item.key() + " runs its experts one by one with a host read (an adapter, hook or bias on an expert, "
                          "or a model dtype other than bf16)";
  }
  return "";
}

// The address of every tensor a captured step reads as a weight: the
// parameters, each Linear's codes and its LoRA adapter (not a parameter of
// the model), and which hooks each Linear has (an adapter attached or
// removed after a capture changes what the step computes).
std::vector<intptr_t> weight_addresses(CausalLMImpl& lm) {
  std::vector<intptr_t> out;
  const auto address = [](const torch::Tensor& t) { return t.defined() ? reinterpret_cast<intptr_t>(t.data_ptr()) : 0; };
  for (const auto& p : lm.parameters(/*recurse=*/true)) out.push_back(address(p));
  for (const auto& item : lm.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    const auto* linear = item.value()->as<LinearImpl>();
    if (linear == nullptr) continue;
    out.push_back(linear->has_adapter_hook() + 2 * linear->has_weight_hook() + 4 * linear->has_input_hook());
    if (const kernels::Fp4Weight* codes = linear->codes())
      for (const torch::Tensor& t : {codes->packed, codes->scale, codes->global_scale}) out.push_back(address(t));
    if (const LinearImpl::LowRankAdapter* adapter = linear->low_rank_adapter())
      for (const torch::Tensor& t : {adapter->a, adapter->b}) out.push_back(address(t));
  }
  return out;
}

class CudaGeneration final : public GenerationBackend {
 public:
  explicit CudaGeneration(CausalLMImpl& lm)
      : stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, lm.device().index())) {
    choose_runner(lm);
  }

  std::vector<GeneratedSequence> generate(CausalLMImpl& lm, const std::vector<std::vector<int64_t>>& prompts,
                                          const GenerationConfig& config) override {
    const c10::cuda::CUDAGuard device_guard(lm.device());
    choose_runner(lm);
    if (std::vector<intptr_t> addresses = weight_addresses(lm); addresses != addresses_) {
      generator_->reset_runner();
      addresses_ = std::move(addresses);
    }
    // The weights were last written on the caller's stream: ours waits for it.
    at::cuda::CUDAEvent written;
    written.record(c10::cuda::getCurrentCUDAStream(lm.device().index()));
    written.block(stream_);
    const c10::cuda::CUDAStreamGuard stream_guard(stream_);
    // The loop ends with host reads of its outputs: nothing of ours is
    // pending on the stream when it returns.
    return generator_->generate(lm, prompts, config);
  }

  std::string describe() const override {
    std::string line = "CUDA engine: static KV cache, tokens read every " + std::to_string(kSyncEvery) + " steps, ";
    if (!blocker_.empty()) return line + "eager decode steps (no CUDA graphs: " + blocker_ + ")";
    if (graphs_ != nullptr && !graphs_->failure().empty())
      return line + "eager decode steps (CUDA graph capture failed: " + graphs_->failure() + ")";
    return line + "decode steps replayed as CUDA graphs per batch bucket";
  }

  void release() override {
    if (generator_) generator_->release();
  }

 private:
  // Graphs when the model allows them, else eager steps; a change between
  // the two starts a new generator (and cache).
  void choose_runner(CausalLMImpl& lm) {
    std::string blocker = graph_blocker(lm);
    if (generator_ && blocker == blocker_) return;
    blocker_ = std::move(blocker);
    std::unique_ptr<DecodeStepRunner> runner;
    graphs_ = nullptr;
    if (blocker_.empty()) {
      auto graphs = std::make_unique<GraphDecodeStep>();
      graphs_ = graphs.get();
      runner = std::move(graphs);
    } else {
      runner = std::make_unique<EagerDecodeStep>();
    }
    generator_ = std::make_unique<StaticGenerator>(std::move(runner), kSyncEvery);
    addresses_.clear();
  }

  c10::cuda::CUDAStream stream_;
  std::unique_ptr<StaticGenerator> generator_;
  GraphDecodeStep* graphs_ = nullptr;  // the generator's runner when it captures graphs
  std::string blocker_;
  std::vector<intptr_t> addresses_;
};

}  // namespace

std::unique_ptr<GenerationBackend> make_cuda_generation(CausalLMImpl& lm) {
  if (!lm.device().is_cuda()) throw Error("CUDA generation: the model is on " + lm.device().str());
  return std::make_unique<CudaGeneration>(lm);
}

}  // namespace qerl::models
