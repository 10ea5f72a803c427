// CUDA kernels of the quantized Linear (issue 15), on raw device pointers so
// that this header and fp4_cuda.cu need no LibTorch: NVFP4 / MXFP4 codes
// dequantized to bf16, and a W4A16 matrix-vector product for decode shapes
// (M <= 8 rows of x) that dequantizes in registers. Each launcher returns
// the launch's cudaError_t. The values are the CPU reference's
// (kernels/nvfp4.cpp, kernels/mxfp4.cpp): e2m1 * (E4M3 scale / G) or
// e2m1 * 2^(E8M0 - 127), computed in fp32 and rounded to bf16 (RTNE).
//
// Status: compiled in every build where nvcc is found (CI included); not yet
// run on a GPU nor wired into kernels::fp4_linear (tests/kernels/
// fp4_cuda_test.cpp checks them against the CPU reference on a GPU host).
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace qerl::kernels::cuda {

// packed [rows, cols / 2] uint8, scales [rows, cols / 16] E4M3 bits,
// global_scale: one float on the device -> out [rows, cols] bf16.
cudaError_t nvfp4_dequantize_bf16(const uint8_t* packed, const uint8_t* scales, const float* global_scale,
                                  int64_t rows, int64_t cols, __nv_bfloat16* out, cudaStream_t stream);

// packed [rows, cols / 2] uint8, scales [rows, cols / 32] E8M0 -> out [rows, cols] bf16.
cudaError_t mxfp4_dequantize_bf16(const uint8_t* packed, const uint8_t* scales, int64_t rows, int64_t cols,
                                  __nv_bfloat16* out, cudaStream_t stream);

// y[m, o] = sum_k x[m, k] * dequant(W)[o, k] (+ bias[o]) for m < M <= 8:
// x [M, K] bf16 (row stride K), W's codes as above ([N, K / 2] and its
// scales), bias [N] bf16 or null, y [M, N] bf16. global_scale null = MXFP4.
// K must be a multiple of 32 (both formats' groups fit).
cudaError_t fp4_gemv_bf16(const __nv_bfloat16* x, int64_t M, int64_t K, const uint8_t* packed, const uint8_t* scales,
                          const float* global_scale, int64_t N, const __nv_bfloat16* bias, __nv_bfloat16* y,
                          cudaStream_t stream);

}  // namespace qerl::kernels::cuda
