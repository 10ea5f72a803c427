// Sparse MoE forward. On the CPU, tokens are grouped by expert with one
// argsort and one host read of the per-expert counts per layer, then a loop
// over experts. On a CUDA device in a QERL_CUDA build (bf16) the routing is
// sorted on the device (no host read) and the experts run grouped: without
// gradients as two grouped launches (kernels::cuda::moe_experts_forward,
// W4A16 codes decoded in registers); with gradients through LibTorch's
// differentiable grouped GEMM (grouped_with_gradients). Experts that do not
// fit either take the loop. The CUDA paths are in sparse_moe_grouped.cpp.
// Without gradients on the GPU the router's softmax and top-k are one
// kernel and the shared expert's gated sum another
// (kernels/cuda/decoder_ops.hpp), rounded as the composed ops below.
#include "models/nn/sparse_moe.hpp"

#include <torch/types.h>

#include "common/error.hpp"
#if QERL_CUDA
#include "kernels/cuda/decoder_ops.hpp"
#include "kernels/cuda/decoder_ops_torch.hpp"
#include "kernels/cuda/fp4_cuda_torch.hpp"
#endif

namespace qerl::models {

SparseMoeImpl::SparseMoeImpl(const ModelConfig& config)
    : num_experts_(config.num_experts),
      top_k_(config.num_experts_per_tok),
      norm_topk_prob_(config.norm_topk_prob),
      float32_mixing_weights_(config.float32_mixing_weights) {
  gate = register_module("gate", Linear(config.hidden_size, num_experts_, /*bias=*/false));
  experts = register_module("experts", torch::nn::ModuleList());
  const auto names = config.architecture == Architecture::mixtral ? SwiGLUNames::mixtral() : SwiGLUNames{};
  for (int64_t e = 0; e < num_experts_; ++e) {
    expert_list_.emplace_back(config.hidden_size, config.moe_intermediate_size, /*bias=*/false, names);
    experts->push_back(expert_list_.back());
  }
  if (config.shared_expert_intermediate_size > 0) {
    shared_expert =
        register_module("shared_expert", SwiGLU(config.hidden_size, config.shared_expert_intermediate_size));
    shared_expert_gate =
        register_module("shared_expert_gate", Linear(config.hidden_size, 1, /*bias=*/false));
  }
}

MoeOutput SparseMoeImpl::forward(const torch::Tensor& x, const LayerRoute& route) {
  // router_logits: [T, E] model dtype; probs: [T, E] float32
  auto router_logits = gate->forward(x);
#if QERL_CUDA
  if (fused_kernels(x) && router_logits.scalar_type() == torch::kBFloat16 && route.mode != RoutingMode::replay &&
      num_experts_ <= kernels::cuda::route_max_experts && top_k_ <= 32) {
    MoeOutput out;
    torch::Tensor weights;
    std::tie(out.indices, weights) =
        kernels::cuda::moe_route(router_logits, top_k_, norm_topk_prob_, !float32_mixing_weights_);
    out.hidden = mix_experts(x, out.indices, weights);
    if (shared_expert) {
      const torch::Tensor gate_logit = shared_expert_gate->forward(x), shared = shared_expert->forward(x);
      out.hidden = gate_logit.scalar_type() == torch::kBFloat16 && shared.scalar_type() == torch::kBFloat16 &&
                           out.hidden.scalar_type() == torch::kBFloat16
                       ? kernels::cuda::shared_expert_add(out.hidden, gate_logit, shared)
                       : out.hidden + torch::sigmoid(gate_logit) * shared;
    }
    return out;
  }
#endif
  auto probs = torch::softmax(router_logits.to(torch::kFloat), -1);
  auto native_indices = std::get<1>(probs.topk(top_k_, -1));  // [T, K] int64

  MoeOutput out;
  out.indices = native_indices;
  if (route.mode == RoutingMode::replay) {
    auto replayed = route.replay_indices.to(torch::kLong);
    if (replayed.sizes() != native_indices.sizes())
      throw Error("routing replay: indices of shape " + c10::str(replayed.sizes()) + " for " +
                  c10::str(native_indices.sizes()) + " tokens x top-k");
    if (route.replay_mask.defined()) replayed = torch::where(route.replay_mask.unsqueeze(-1), replayed, native_indices);
    out.indices = replayed;
    out.native_indices = native_indices;
  }
  // Mixing weights are always gathered from the current probabilities, so
  // under replay the router still receives gradients.
  auto weights = probs.gather(-1, out.indices);  // [T, K] float32
  if (norm_topk_prob_) weights = weights / weights.sum(-1, /*keepdim=*/true);
  if (!float32_mixing_weights_) weights = weights.to(router_logits.scalar_type());

  out.hidden = mix_experts(x, out.indices, weights);
  if (shared_expert) {
    auto shared = torch::sigmoid(shared_expert_gate->forward(x)) * shared_expert->forward(x);
    out.hidden = out.hidden + shared;
  }
  return out;
}

bool SparseMoeImpl::fused_kernels(const torch::Tensor& x) const {
#if QERL_CUDA
  return x.is_cuda() && x.scalar_type() == torch::kBFloat16 && !torch::GradMode::is_enabled() &&
         !expert_loop_forced_ && kernels::cuda::fused_decode_enabled();
#else
  (void)x;
  return false;
#endif
}

torch::Tensor SparseMoeImpl::mix_experts(const torch::Tensor& x, const torch::Tensor& indices,
                                         const torch::Tensor& weights) {
#if QERL_CUDA
  if (x.is_cuda() && x.scalar_type() == torch::kBFloat16 && !expert_loop_forced_) {
    if (!torch::GradMode::is_enabled()) {
      if (const void* stacked = stacked_experts())
        return kernels::cuda::moe_experts_forward(x, indices, weights,
                                                  *static_cast<const kernels::cuda::MoeExperts*>(stacked));
    } else if (torch::Tensor y = grouped_with_gradients(x, indices, weights); y.defined()) {
      return y;
    }
  }
#endif
  // Group the T*K (token, slot) assignments by expert; slot s of token t is
  // flat entry t*K + s.
  const int64_t tokens = x.size(0);
  auto flat = indices.reshape({-1});
  auto order = std::get<1>(flat.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));
  auto counts = torch::bincount(flat, /*weights=*/{}, /*minlength=*/num_experts_).to(torch::kCPU);
  if (counts.size(0) > num_experts_)
    throw Error("routing: expert index out of range [0, " + std::to_string(num_experts_) + ")");
  // outputs: [T*K, H] model dtype, one expert output per assignment
  auto outputs = torch::empty({tokens * top_k_, x.size(1)}, x.options());
  const auto* count = counts.data_ptr<int64_t>();
  int64_t offset = 0;
  for (int64_t e = 0; e < num_experts_; ++e) {
    const int64_t n = count[e];
    if (n == 0) continue;
    auto assignment = order.narrow(0, offset, n);  // [n] flat ids
    offset += n;
    auto rows = x.index_select(0, torch::floor_divide(assignment, top_k_));
    outputs.index_copy_(0, assignment, expert_list_[e]->forward(rows));
  }
  // As transformers 5.x's default (grouped_mm) experts: weight each output
  // (bf16 x bf16 for Qwen, bf16 x fp32 -> fp32 for Mixtral), then sum the K
  // slots in one reduction (fp32 accumulation) and round once.
  auto weighted = outputs * weights.reshape({-1}).unsqueeze(-1);
  return weighted.view({tokens, top_k_, -1}).sum(1).to(x.scalar_type());
}

}  // namespace qerl::models

