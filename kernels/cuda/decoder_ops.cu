// RMSNorm and rotary-embedding kernels; see decoder_ops.hpp.
#include "kernels/cuda/decoder_ops.hpp"

namespace qerl::kernels::cuda {
namespace {

__device__ inline float round_bf16(float v) { return __bfloat162float(__float2bfloat16(v)); }

// One block per row; each thread holds 8 values per pass of 16 bytes.
__global__ void rms_norm_kernel(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ weight,
                                float eps, int dim, __nv_bfloat16* __restrict__ out) {
  const __nv_bfloat16* row = x + static_cast<int64_t>(blockIdx.x) * dim;
  __nv_bfloat16* dst = out + static_cast<int64_t>(blockIdx.x) * dim;
  float squares = 0.f;
  for (int i = threadIdx.x * 8; i < dim; i += blockDim.x * 8) {
    const uint4 packed = *reinterpret_cast<const uint4*>(row + i);
    const __nv_bfloat16* v = reinterpret_cast<const __nv_bfloat16*>(&packed);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float f = __bfloat162float(v[j]);
      squares += f * f;
    }
  }
  __shared__ float partial[32];
  for (int offset = 16; offset > 0; offset /= 2) squares += __shfl_xor_sync(0xffffffffu, squares, offset);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = squares;
  __syncthreads();
  if (threadIdx.x < 32) {
    float s = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0.f;
    for (int offset = 16; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
    if (threadIdx.x == 0) partial[0] = s;
  }
  __syncthreads();
  const float inverse = rsqrtf(partial[0] / static_cast<float>(dim) + eps);
  for (int i = threadIdx.x * 8; i < dim; i += blockDim.x * 8) {
    const uint4 packed = *reinterpret_cast<const uint4*>(row + i);
    const uint4 scale = *reinterpret_cast<const uint4*>(weight + i);
    const __nv_bfloat16* v = reinterpret_cast<const __nv_bfloat16*>(&packed);
    const __nv_bfloat16* w = reinterpret_cast<const __nv_bfloat16*>(&scale);
    uint4 result;
    __nv_bfloat16* r = reinterpret_cast<__nv_bfloat16*>(&result);
#pragma unroll
    for (int j = 0; j < 8; ++j)  // as weight * x32.to(bf16): normalized rounded, then the product
      r[j] = __float2bfloat16(__bfloat162float(w[j]) * round_bf16(__bfloat162float(v[j]) * inverse));
    *reinterpret_cast<uint4*>(dst + i) = result;
  }
}

// One thread per (b, s, h, d < D/2) pair: out[d] and out[d + D/2].
__global__ void rotary_kernel(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ cos,
                              const __nv_bfloat16* __restrict__ sin, int64_t seq, int64_t heads, int64_t dim,
                              int64_t pairs, __nv_bfloat16* __restrict__ out) {
  const int64_t half = dim / 2;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < pairs;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = i % half;
    const int64_t h = (i / half) % heads;
    const int64_t bs = i / (half * heads);  // b * seq + s
    const int64_t s = bs % seq, b = bs / seq;
    const __nv_bfloat16* in = x + (bs * heads + h) * dim;
    const __nv_bfloat16* c = cos + bs * dim;
    const __nv_bfloat16* n = sin + bs * dim;
    __nv_bfloat16* o = out + ((b * heads + h) * seq + s) * dim;
    const float lo = __bfloat162float(in[d]), hi = __bfloat162float(in[d + half]);
    o[d] = __float2bfloat16(round_bf16(lo * __bfloat162float(c[d])) + round_bf16(-hi * __bfloat162float(n[d])));
    o[d + half] = __float2bfloat16(round_bf16(hi * __bfloat162float(c[d + half])) +
                                   round_bf16(lo * __bfloat162float(n[d + half])));
  }
}

}  // namespace

cudaError_t rms_norm_bf16(const __nv_bfloat16* x, const __nv_bfloat16* weight, float eps, int64_t rows, int64_t dim,
                          __nv_bfloat16* out, cudaStream_t stream) {
  if (dim % 8 != 0 || rows > 0x7fffffff) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(weight) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(out) % 16 != 0)
    return cudaErrorMisalignedAddress;
  if (rows == 0) return cudaSuccess;
  int threads = static_cast<int>((dim / 8 + 31) / 32 * 32);
  threads = threads > 1024 ? 1024 : threads;
  rms_norm_kernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(x, weight, eps, static_cast<int>(dim), out);
  return cudaGetLastError();
}

cudaError_t rotary_bf16(const __nv_bfloat16* x, const __nv_bfloat16* cos, const __nv_bfloat16* sin, int64_t batch,
                        int64_t seq, int64_t heads, int64_t dim, __nv_bfloat16* out, cudaStream_t stream) {
  if (dim % 2 != 0) return cudaErrorInvalidValue;
  const int64_t pairs = batch * seq * heads * (dim / 2);
  if (pairs == 0) return cudaSuccess;
  const int64_t blocks = (pairs + 255) / 256;
  rotary_kernel<<<static_cast<unsigned>(blocks < (1 << 16) ? blocks : (1 << 16)), 256, 0, stream>>>(
      x, cos, sin, seq, heads, dim, pairs, out);
  return cudaGetLastError();
}

}  // namespace qerl::kernels::cuda
