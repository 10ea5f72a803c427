// Sparse mixture-of-experts block: router `gate` (linear, no bias) ->
// softmax over experts in float32 -> top-k -> renormalize iff the model
// does -> weighted sum of SwiGLU experts, plus qwen2_moe's shared expert
// scaled by sigmoid(shared_expert_gate(x)). Supports native, capture and
// replay routing (see routing.hpp); names match HF checkpoints.
#pragma once

#include <array>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "models/nn/linear.hpp"
#include "models/nn/model_config.hpp"
#include "models/nn/routing.hpp"
#include "models/nn/swiglu.hpp"

namespace qerl::kernels::cuda {
struct MoeExperts;
}

namespace qerl::models {

// The routing request for one MoE layer, over flattened tokens.
struct LayerRoute {
  RoutingMode mode = RoutingMode::native;
  torch::Tensor replay_indices;  // replay: [T, K] int64
  torch::Tensor replay_mask;     // replay, optional: [T] bool (false = route natively)
};

struct MoeOutput {
  torch::Tensor hidden;          // [T, hidden] model dtype
  torch::Tensor indices;         // [T, K] int64: experts used
  torch::Tensor native_indices;  // replay only: [T, K] int64 router's own top-k
};

class SparseMoeImpl : public torch::nn::Module {
 public:
  explicit SparseMoeImpl(const ModelConfig& config);

  // x: [T, hidden] model dtype (tokens flattened).
  MoeOutput forward(const torch::Tensor& x, const LayerRoute& route);

  Linear gate{nullptr};                // weight [E, hidden]
  torch::nn::ModuleList experts{nullptr};         // E x SwiGLU
  SwiGLU shared_expert{nullptr};                  // qwen2_moe only
  Linear shared_expert_gate{nullptr};  // qwen2_moe only, weight [1, hidden]

  // Whether a forward without gradients runs the experts as grouped
  // launches with no host read (a CUDA build, bf16 experts on a CUDA
  // device, no hooks but LoRA adapters): what a CUDA graph can capture.
  // Refreshes the stacked experts first, so call it before capturing or
  // replaying.
  bool grouped_on_device();

  // Makes every forward take the per-expert loop and the composed router
  // and shared-expert ops (tests and benchmarks compare the grouped paths
  // and fused kernels against it).
  void force_expert_loop(bool on) { expert_loop_forced_ = on; }

  // The LoRA of one expert projection (gate, up or down) while it trains
  // through the grouped path on a CUDA device: every expert's adapter
  // tensors, and their gradients, are rows of these stacked fp32 tensors
  // (see grouped_with_gradients).
  struct StackedAdapters {
    torch::Tensor a, b;            // [E, r, in], [E, out, r]: the adapters' values
    torch::Tensor grad_a, grad_b;  // the same shapes: their gradients
  };

 private:
  // Whether the router and the shared expert's sum take the fused CUDA
  // kernels: bf16 on a CUDA device, without gradients, loop not forced.
  bool fused_kernels(const torch::Tensor& x) const;

  // x: [T, H]; indices: [T, K] int64; weights: [T, K] -> [T, H] x's dtype
  torch::Tensor mix_experts(const torch::Tensor& x, const torch::Tensor& indices, const torch::Tensor& weights);

  // On a CUDA device without gradients: the experts as the grouped kernels
  // take them (kernels/cuda/fp4_cuda_torch.hpp), stacked once and rebuilt
  // when any expert weight, its codes or its LoRA adapter change; null when
  // an expert has a bias, a hook other than LoRA, LoRA with dropout active,
  // or mixed formats (the per-expert loop runs then).
  const void* stacked_experts();
  // The addresses and versions of every expert's base tensors (weights or
  // codes), or with `adapters` of its LoRA tensors: what stacked_experts
  // was built from when unchanged.
  std::vector<int64_t> expert_key(bool adapters) const;
  // Stacks the experts' weights or codes into `stacked` (their tensors
  // become views of it); false when their formats differ.
  bool restack_base(kernels::cuda::MoeExperts& stacked);

  // With gradients on a CUDA device: the experts as differentiable grouped
  // GEMMs (LibTorch's _grouped_mm) over the device-sorted routing: trained
  // bf16 weights stacked from the parameters each call, frozen bases from
  // stacked_experts() (bf16, or codes through frozen_experts_projection),
  // LoRA stacked from the adapters' parameters. Undefined when an expert
  // does not fit (a bias, a weight or input hook, LoRA with dropout active
  // or of a rank not a multiple of 8, mixed formats).
  torch::Tensor grouped_with_gradients(const torch::Tensor& x, const torch::Tensor& indices,
                                       const torch::Tensor& weights);

  std::array<StackedAdapters, 3> trained_lora_;  // gate, up, down

  int64_t num_experts_;
  int64_t top_k_;
  bool norm_topk_prob_;
  bool float32_mixing_weights_;
  std::vector<SwiGLU> expert_list_;
  std::shared_ptr<void> stacked_;  // kernels::cuda::MoeExperts (CUDA builds)
  std::vector<int64_t> stacked_base_key_, stacked_adapter_key_;
  bool expert_loop_forced_ = false;
};
TORCH_MODULE(SparseMoe);

}  // namespace qerl::models
