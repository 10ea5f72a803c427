// LibTorch entry points of decoder_ops.hpp's kernels, for bf16 CUDA
// tensors on the current stream, without autograd (the models call them
// when gradients are off; training keeps the composed ops). Shapes are
// checked here (qerl::Error, one line).
#pragma once

#include <torch/types.h>

#include <utility>

namespace qerl::kernels::cuda {

// Whether the models take the decode-path fusions (the router, the sort by
// expert, silu * up, the shared expert's sum, the residual sum + RMSNorm,
// the key's rotary + cache write, the mask converted once per forward):
// on, unless the environment has QERL_FUSED_DECODE=0 at the first call;
// benchmarks switch it to compare both in one run. RMSNorm and the rotary
// embedding alone are fused either way.
bool fused_decode_enabled();
void set_fused_decode(bool on);

// x: [..., dim] bf16, weight: [dim] bf16 -> RMSNorm(x) [..., dim] bf16.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// (x + residual, RMSNorm(x + residual)) in one kernel: x and residual of
// one shape [..., dim] bf16, weight [dim] bf16.
std::pair<torch::Tensor, torch::Tensor> add_rms_norm(const torch::Tensor& x, const torch::Tensor& residual,
                                                     const torch::Tensor& weight, double eps);

// x: [B, S, H, D] bf16 (any strides); cos, sin: [B, S, D] bf16 ->
// x * cos + rotate_half(x) * sin as [B, H, S, D] bf16, contiguous.
torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// A decode step's key and value written into a static cache: k, v [B, 1,
// H, D] bf16, cos, sin [B, 1, D] bf16, slot [1] int64 on the device,
// caches [B, H, capacity, D] bf16 contiguous. The same as
// k_cache.index_copy_(2, slot, rotary(k, cos, sin)) and
// v_cache.index_copy_(2, slot, v.transpose(1, 2)), in one kernel (the
// caches are written in place).
void rotary_into_cache(const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& cos,
                       const torch::Tensor& sin, const torch::Tensor& slot, const torch::Tensor& k_cache,
                       const torch::Tensor& v_cache);

// torch::silu(gate) * up, rounded as those two ops: gate and up [..., cols]
// bf16 of one shape (2-D views with contiguous columns are read in place,
// e.g. the two halves of a fused gate/up output) -> [..., cols] contiguous.
torch::Tensor silu_mul(const torch::Tensor& gate, const torch::Tensor& up);

// moe + sigmoid(gate) * shared, rounded as those ops: moe and shared
// [tokens, hidden] bf16, gate [tokens, 1] bf16 -> [tokens, hidden].
torch::Tensor shared_expert_add(const torch::Tensor& moe, const torch::Tensor& gate, const torch::Tensor& shared);

// The router's softmax and top-k (see moe_route_bf16): logits [tokens,
// experts] bf16 -> (indices [tokens, top_k] int64, weights [tokens, top_k]
// fp32, or bf16 when bf16_weights), normalized to sum 1 when normalize.
std::pair<torch::Tensor, torch::Tensor> moe_route(const torch::Tensor& logits, int64_t top_k, bool normalize,
                                                  bool bf16_weights);

}  // namespace qerl::kernels::cuda
