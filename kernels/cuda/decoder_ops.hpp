// Fused CUDA kernels of the decoder's small operations, which as LibTorch
// ops cost several launches each per layer (issue 16: a decode step is
// ~60 small kernels per layer): RMSNorm and the rotary embedding. Raw
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

// Rotary embedding with the rotate-half convention: x [B, S, H, D] bf16
// (contiguous, as a projection's output viewed per head) -> out [B, H, S, D]
// = x * cos + rotate_half(x) * sin, each product and the sum rounded to
// bf16; cos, sin: [B, S, D] bf16. D even.
cudaError_t rotary_bf16(const __nv_bfloat16* x, const __nv_bfloat16* cos, const __nv_bfloat16* sin, int64_t batch,
                        int64_t seq, int64_t heads, int64_t dim, __nv_bfloat16* out, cudaStream_t stream);

}  // namespace qerl::kernels::cuda
