// CUDA kernels of the quantized Linear (see fp4_cuda.hpp).
#include "kernels/cuda/fp4_cuda.hpp"

#include <cuda_fp8.h>

namespace qerl::kernels::cuda {
namespace {

// E2M1 code (low 4 bits) -> its value: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and negatives.
// Twice the magnitudes (0, 1, 2, 3, 4, 6, 8, 12) packed as nibbles of one
// constant: a shift, not a table in local memory.
__device__ __forceinline__ float e2m1_value(uint32_t code) {
  const float m = static_cast<float>((0xC8643210u >> (4u * (code & 7u))) & 0xFu) * 0.5f;
  return (code & 8u) ? -m : m;
}

__device__ __forceinline__ float e4m3_value(uint8_t bits) {
  __nv_fp8_e4m3 v;
  v.__x = bits;
  return static_cast<float>(v);
}

// 2^(code - 127), exact (E8M0; code 255 is NaN in OCP MX, never written by the packer).
__device__ __forceinline__ float e8m0_value(uint8_t code) { return ldexpf(1.0f, static_cast<int>(code) - 127); }

// One thread per byte of codes (two outputs).
template <bool kNvfp4>
__global__ void dequantize_kernel(const uint8_t* __restrict__ packed, const uint8_t* __restrict__ scales,
                                  const float* __restrict__ global_scale, int64_t rows, int64_t cols,
                                  __nv_bfloat16* __restrict__ out) {
  const int64_t bytes = rows * (cols / 2);
  const int64_t group = kNvfp4 ? 16 : 32;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < bytes;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / (cols / 2);
    const int64_t c = (i % (cols / 2)) * 2;
    const uint8_t s = scales[r * (cols / group) + c / group];
    const float scale = kNvfp4 ? e4m3_value(s) / *global_scale : e8m0_value(s);
    const uint8_t byte = packed[i];
    out[r * cols + c] = __float2bfloat16_rn(e2m1_value(byte & 0xFu) * scale);
    out[r * cols + c + 1] = __float2bfloat16_rn(e2m1_value(byte >> 4) * scale);
  }
}

// One warp per output row o; lanes stride over 32-element chunks of K (16
// bytes of codes each: one 16-byte load), each with its block scale(s);
// M accumulators per lane, reduced across the warp at the end.
template <int M>
__global__ void gemv_kernel(const __nv_bfloat16* __restrict__ x, int64_t K, const uint8_t* __restrict__ packed,
                            const uint8_t* __restrict__ scales, const float* __restrict__ global_scale, int64_t N,
                            const __nv_bfloat16* __restrict__ bias, __nv_bfloat16* __restrict__ y) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (o >= N) return;
  const bool nvfp4 = global_scale != nullptr;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;
  const uint8_t* row_codes = packed + o * (K / 2);
  for (int64_t chunk = lane; chunk < K / 32; chunk += 32) {
    const uint4 codes = *reinterpret_cast<const uint4*>(row_codes + chunk * 16);
    const uint32_t words[4] = {codes.x, codes.y, codes.z, codes.w};
    float scale[2];
    if (nvfp4) {
      const uint8_t* s = scales + o * (K / 16) + chunk * 2;
      scale[0] = e4m3_value(s[0]) / *global_scale;
      scale[1] = e4m3_value(s[1]) / *global_scale;
    } else {
      scale[0] = scale[1] = e8m0_value(scales[o * (K / 32) + chunk]);
    }
#pragma unroll
    for (int w = 0; w < 4; ++w) {
#pragma unroll
      for (int nib = 0; nib < 8; ++nib) {
        const int k_local = w * 8 + nib;  // 0..31 within the chunk
        const float v = e2m1_value(words[w] >> (4 * nib)) * scale[k_local / 16];
        const int64_t k = chunk * 32 + k_local;
#pragma unroll
        for (int m = 0; m < M; ++m) acc[m] += v * __bfloat162float(x[m * K + k]);
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], offset);
  }
  if (lane == 0) {
    const float b = bias ? __bfloat162float(bias[o]) : 0.f;
#pragma unroll
    for (int m = 0; m < M; ++m) y[m * N + o] = __float2bfloat16_rn(acc[m] + b);
  }
}

int blocks_for(int64_t work, int threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  return static_cast<int>(blocks < 65535 * 16 ? blocks : 65535 * 16);
}

template <int M>
cudaError_t launch_gemv(const __nv_bfloat16* x, int64_t K, const uint8_t* packed, const uint8_t* scales,
                        const float* global_scale, int64_t N, const __nv_bfloat16* bias, __nv_bfloat16* y,
                        cudaStream_t stream) {
  constexpr int kWarps = 4;
  const int blocks = static_cast<int>((N + kWarps - 1) / kWarps);
  gemv_kernel<M><<<blocks, kWarps * 32, 0, stream>>>(x, K, packed, scales, global_scale, N, bias, y);
  return cudaGetLastError();
}

}  // namespace

cudaError_t nvfp4_dequantize_bf16(const uint8_t* packed, const uint8_t* scales, const float* global_scale,
                                  int64_t rows, int64_t cols, __nv_bfloat16* out, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  const int threads = 256;
  dequantize_kernel<true><<<blocks_for(rows * cols / 2, threads), threads, 0, stream>>>(packed, scales, global_scale,
                                                                                       rows, cols, out);
  return cudaGetLastError();
}

cudaError_t mxfp4_dequantize_bf16(const uint8_t* packed, const uint8_t* scales, int64_t rows, int64_t cols,
                                  __nv_bfloat16* out, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  const int threads = 256;
  dequantize_kernel<false><<<blocks_for(rows * cols / 2, threads), threads, 0, stream>>>(packed, scales, nullptr,
                                                                                        rows, cols, out);
  return cudaGetLastError();
}

cudaError_t fp4_gemv_bf16(const __nv_bfloat16* x, int64_t M, int64_t K, const uint8_t* packed, const uint8_t* scales,
                          const float* global_scale, int64_t N, const __nv_bfloat16* bias, __nv_bfloat16* y,
                          cudaStream_t stream) {
  if (K % 32 != 0) return cudaErrorInvalidValue;
  if (M <= 0 || N <= 0) return cudaSuccess;
  switch (M) {
    case 1: return launch_gemv<1>(x, K, packed, scales, global_scale, N, bias, y, stream);
    case 2: return launch_gemv<2>(x, K, packed, scales, global_scale, N, bias, y, stream);
    case 3: return launch_gemv<3>(x, K, packed, scales, global_scale, N, bias, y, stream);
    case 4: return launch_gemv<4>(x, K, packed, scales, global_scale, N, bias, y, stream);
    case 5: return launch_gemv<5>(x, K, packed, scales, global_scale, N, bias, y, stream);
    case 6: return launch_gemv<6>(x, K, packed, scales, global_scale, N, bias, y, stream);
    case 7: return launch_gemv<7>(x, K, packed, scales, global_scale, N, bias, y, stream);
    case 8: return launch_gemv<8>(x, K, packed, scales, global_scale, N, bias, y, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace qerl::kernels::cuda
