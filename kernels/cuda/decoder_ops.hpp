// Fused CUDA kernels of the decoder's small operations, which as LibTorch
// ops cost several launches each per layer (issue 16: a decode step is
// ~60 small kernels per layer): RMSNorm (alone or after the residual
// sum), the rotary embedding (alone or with the KV cache write), SwiGLU's
// silu(gate) * up, the shared expert's gated sum, and the MoE router's
// softmax + top-k and its sort of assignments by expert. Raw
// device pointers and a stream, as fp4_cuda.hpp; decoder_ops_torch.hpp
// binds them. The arithmetic rounds where the composed LibTorch ops of
// models/nn round (HF's formulas in bf16), so results agree bit for bit
// except the RMSNorm's fp32 sum of squares, whose order differs.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace qerl::kernels::cuda {

// out = weight * bf16(x * rsqrt(mean(x^2) + eps)) over the last dim of x:
// [rows, dim] bf16 (dim % 8 == 0, 16-byte aligned rows).
cudaError_t rms_norm_bf16(const __nv_bfloat16* x, const __nv_bfloat16* weight, float eps, int64_t rows, int64_t dim,
                          __nv_bfloat16* out, cudaStream_t stream);

// The residual sum and its RMSNorm in one pass: sum = bf16(x + residual),
// out = RMSNorm(sum) as rms_norm_bf16; all [rows, dim] bf16, 16-byte aligned.
cudaError_t add_rms_norm_bf16(const __nv_bfloat16* x, const __nv_bfloat16* residual, const __nv_bfloat16* weight,
                              float eps, int64_t rows, int64_t dim, __nv_bfloat16* sum, __nv_bfloat16* out,
                              cudaStream_t stream);

// Rotary embedding with the rotate-half convention: x [B, S, H, D] bf16
// (contiguous, as a projection's output viewed per head) -> out [B, H, S, D]
// = x * cos + rotate_half(x) * sin, each product and the sum rounded to
// bf16; cos, sin: [B, S, D] bf16. D even.
cudaError_t rotary_bf16(const __nv_bfloat16* x, const __nv_bfloat16* cos, const __nv_bfloat16* sin, int64_t batch,
                        int64_t seq, int64_t heads, int64_t dim, __nv_bfloat16* out, cudaStream_t stream);

// One decode token per row into a static KV cache: k and v [B, 1, H, D]
// bf16 contiguous (projection outputs viewed per head), cos and sin [B, 1,
// D]; the rotated k (as rotary_bf16) and v are written at slot *slot (a
// device int64) of k_cache and v_cache [B, H, capacity, D]; a slot outside
// [0, capacity) writes nothing.
cudaError_t rotary_kv_cache_bf16(const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* cos,
                                const __nv_bfloat16* sin, int64_t batch, int64_t heads, int64_t dim,
                                const int64_t* slot, int64_t capacity, __nv_bfloat16* k_cache,
                                __nv_bfloat16* v_cache, cudaStream_t stream);

// out[r, c] = bf16(bf16(silu(gate[r, c])) * up[r, c]) as torch::silu(gate)
// * up rounds: gate and up [rows, cols] bf16 with row strides (in values)
// gate_stride and up_stride (columns contiguous), out [rows, cols]
// contiguous.
cudaError_t silu_mul_bf16(const __nv_bfloat16* gate, int64_t gate_stride, const __nv_bfloat16* up, int64_t up_stride,
                          int64_t rows, int64_t cols, __nv_bfloat16* out, cudaStream_t stream);

// The shared expert's contribution as sparse_moe.cpp composes it:
// out[t, h] = bf16(moe[t, h] + bf16(bf16(sigmoid(gate[t])) * shared[t, h])),
// moe, shared, out [tokens, hidden] contiguous bf16; gate [tokens] with
// stride gate_stride (the [T, 1] output of the gate Linear).
cudaError_t shared_expert_add_bf16(const __nv_bfloat16* moe, const __nv_bfloat16* gate, int64_t gate_stride,
                                   const __nv_bfloat16* shared, int64_t tokens, int64_t hidden, __nv_bfloat16* out,
                                   cudaStream_t stream);

// The MoE router without replay, one warp per token: probs =
// softmax(fp32(logits[t, :])), the top_k largest (descending; ties to the
// lower expert id) into indices [tokens, top_k] int64, and their
// probabilities (divided by their sum when normalize) into weights
// [tokens, top_k], fp32 or, when weights_bf16, rounded once to bf16.
// logits [tokens, experts] bf16 contiguous; experts <= 256, top_k <= experts.
constexpr int64_t route_max_experts = 256;
cudaError_t moe_route_bf16(const __nv_bfloat16* logits, int64_t tokens, int64_t experts, int64_t top_k,
                           bool normalize, int64_t* indices, void* weights, bool weights_bf16, cudaStream_t stream);

// The assignments of indices [n] (flat t * top_k + s, expert ids in
// [0, experts)) stably sorted by expert in one block: order [n] (assignment
// ids in sorted order), rows [n] (order / top_k: the token of each sorted
// row), offsets [experts + 1] int32 (each expert's first sorted row), and
// position [n] (where each assignment sits in order). For decode-sized
// routings: n <= sort_max_assignments, experts <= route_max_experts. An
// id outside [0, experts) is placed in no expert; its position is 0, so
// that readers stay in bounds.
constexpr int64_t sort_max_assignments = 16384;
cudaError_t moe_sort_by_expert(const int64_t* indices, int64_t n, int64_t experts, int64_t top_k, int64_t* order,
                               int64_t* rows, int32_t* offsets, int64_t* position, cudaStream_t stream);

}  // namespace qerl::kernels::cuda
