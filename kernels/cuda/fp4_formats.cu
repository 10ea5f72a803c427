// NVFP4 / MXFP4 formats on the GPU (see fp4_cuda.hpp): amax reduction,
// quantize (pack), fake-quantize and dequantize, each one pass over the
// tensor with one thread per scale group, the same arithmetic as the CPU
// reference in the same order.
#include "kernels/cuda/fp4_cuda.hpp"
#include "kernels/cuda/fp4_device.cuh"

namespace qerl::kernels::cuda {
namespace {

using namespace device;

constexpr int kThreads = 256;

int grid_for(int64_t work) {
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < (1 << 20) ? (blocks > 0 ? blocks : 1) : (1 << 20));
}

// x: blocks over one batch entry's work; y: the batch entries (looped past 65535).
dim3 batch_grid(int64_t work_per_batch, int64_t batch) {
  return dim3(static_cast<unsigned>(grid_for(work_per_batch)), static_cast<unsigned>(batch < 65535 ? batch : 65535));
}

template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float(float v) { return v; }
template <>
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }

// N consecutive values (N * sizeof(T) a multiple of 16 bytes, 16-byte aligned) into fp32.
template <typename T, int N>
__device__ __forceinline__ void load_group(const T* src, float (&v)[N]) {
  constexpr int per_vec = 16 / sizeof(T);
#pragma unroll
  for (int i = 0; i < N / per_vec; ++i) {
    const uint4 raw = reinterpret_cast<const uint4*>(src)[i];
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int j = 0; j < per_vec; ++j) v[i * per_vec + j] = to_float(e[j]);
  }
}

template <typename T, int N>
__device__ __forceinline__ void store_group(T* dst, const float (&v)[N]) {
  constexpr int per_vec = 16 / sizeof(T);
#pragma unroll
  for (int i = 0; i < N / per_vec; ++i) {
    uint4 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int j = 0; j < per_vec; ++j) e[j] = from_float<T>(v[i * per_vec + j]);
    reinterpret_cast<uint4*>(dst)[i] = raw;
  }
}

// Max |w| of each of `batch` slices of `per_batch` values, atomically into
// amax_bits[b] (non-negative floats order as their bits; NaN is skipped by fmaxf).
template <typename T>
__global__ void amax_kernel(const T* __restrict__ w, int64_t per_batch, uint32_t* __restrict__ amax_bits) {
  const T* slice = w + blockIdx.y * per_batch;
  constexpr int per_vec = 16 / sizeof(T);
  float m = 0.0f;
  const int64_t vecs = per_batch / per_vec;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < vecs;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint4 raw = reinterpret_cast<const uint4*>(slice)[i];
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int j = 0; j < per_vec; ++j) m = fmaxf(m, fabsf(to_float(e[j])));
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  __shared__ float warp_max[kThreads / 32];
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < kThreads / 32; ++i) m = fmaxf(m, warp_max[i]);
    atomicMax(amax_bits + blockIdx.y, __float_as_uint(m));
  }
}

struct Group16 {
  float v[16];
};

// The 16 codes of a group (packed, element 0 in the low nibble) from IEEE
// quotients v / eff: the slow path of nvfp4_quantize_kernel, out of line.
__device__ __noinline__ uint2 nvfp4_codes_ieee(Group16 g, float eff) {
  uint2 out{0, 0};
#pragma unroll
  for (int i = 0; i < 16; ++i) (i < 8 ? out.x : out.y) |= e2m1_encode(g.v[i] / eff) << (4 * (i % 8));
  return out;
}

// One thread per 16-value group. Global scale: given[b] if `given` is set,
// else nvfp4_global_scale(amax[b]) (also stored to global_out[b] by the
// first group of the slice). kFake: write dequant(quant(w)) to fake (T),
// else codes and E4M3 scales.
template <typename T, bool kFake>
__global__ void nvfp4_quantize_kernel(const T* __restrict__ w, int64_t groups_per_batch, int64_t batch,
                                      const float* __restrict__ given, const uint32_t* __restrict__ amax_bits,
                                      float* __restrict__ global_out, uint8_t* __restrict__ packed,
                                      uint8_t* __restrict__ scales, T* __restrict__ fake) {
  constexpr bool bf16 = sizeof(T) == 2;
  // blockIdx.y walks the batch (no 64-bit division per group to find it)
  for (int64_t b = blockIdx.y; b < batch; b += gridDim.y)
  for (int64_t local = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; local < groups_per_batch;
       local += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t gi = b * groups_per_batch + local;
    const float g = given ? given[b] : nvfp4_global_scale(__uint_as_float(amax_bits[b]), bf16);
    if (global_out && local == 0) global_out[b] = g;
    float v[16];
    load_group<T, 16>(w + gi * 16, v);
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 16; ++i) amax = fmaxf(amax, fabsf(v[i]));
    const uint8_t s = nvfp4_block_scale(amax, g, bf16);
    const float eff = e4m3_value(s) / g, inv = 1.0f / eff;
    // Quotients by the reciprocal (divide_by); a group with any quotient in
    // the underflow range (or an infinite reciprocal) is redone with IEEE
    // divisions out of line, one rare branch per group.
    Group16 in;
    uint2 out{0, 0};
    float smallest = isfinite(inv) ? INFINITY : 0.0f;
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      in.v[i] = v[i];
      const float q = divide_by(v[i], eff, inv);
      smallest = fminf(smallest, fabsf(q));
      (i < 8 ? out.x : out.y) |= e2m1_encode(q) << (4 * (i % 8));
    }
    if (smallest < 1e-30f) out = nvfp4_codes_ieee(in, eff);  // the IEEE quotient's sign decides -0 vs +0 codes
    if constexpr (kFake) {
#pragma unroll
      for (int i = 0; i < 16; ++i) v[i] = e2m1_value((i < 8 ? out.x : out.y) >> (4 * (i % 8))) * eff;
      store_group<T, 16>(fake + gi * 16, v);
    } else {
      reinterpret_cast<uint2*>(packed)[gi] = out;
      scales[gi] = s;
    }
  }
}

// One thread per 32-value group: E8M0 scale by `ocp` or compressed-tensors' rule.
template <typename T, bool kFake>
__global__ void mxfp4_quantize_kernel(const T* __restrict__ w, int64_t groups, bool ocp,
                                      uint8_t* __restrict__ packed, uint8_t* __restrict__ scales,
                                      T* __restrict__ fake) {
  constexpr bool bf16 = sizeof(T) == 2;
  for (int64_t gi = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; gi < groups;
       gi += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v[32];
    load_group<T, 32>(w + gi * 32, v);
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 32; ++i) amax = fmaxf(amax, fabsf(v[i]));
    const uint8_t s = mxfp4_scale_code(amax, ocp);
    const float scale = e8m0_value(s);
    const float inv = 1.0f / scale;  // exact: the scale is a power of two (or inf, whose inverse 0 divides alike)
    uint32_t code[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) code[i] = e2m1_encode(round_to(bf16, v[i] * inv));
    if constexpr (kFake) {
#pragma unroll
      for (int i = 0; i < 32; ++i) v[i] = e2m1_value(code[i]) * scale;
      store_group<T, 32>(fake + gi * 32, v);
    } else {
      uint4 out{0, 0, 0, 0};
      uint32_t* word = &out.x;
#pragma unroll
      for (int i = 0; i < 32; ++i) word[i / 8] |= code[i] << (4 * (i % 8));
      reinterpret_cast<uint4*>(packed)[gi] = out;
      scales[gi] = s;
    }
  }
}

// One thread per 8 bytes of codes (16 values). NVFP4: the chunk is one
// group; MXFP4: half of one. Values e2m1 * scale in fp32, rounded to T.
template <typename T, bool kNvfp4>
__global__ void dequantize_kernel(const uint8_t* __restrict__ packed, const uint8_t* __restrict__ scales,
                                  const float* __restrict__ global_scale, int64_t chunks_per_batch, int64_t batch,
                                  T* __restrict__ out) {
  for (int64_t b = blockIdx.y; b < batch; b += gridDim.y)
  for (int64_t local = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; local < chunks_per_batch;
       local += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = b * chunks_per_batch + local;
    const float scale = kNvfp4 ? e4m3_value(scales[c]) / global_scale[b] : e8m0_value(scales[c / 2]);
    const uint2 codes = reinterpret_cast<const uint2*>(packed)[c];
    float v[16];
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = e2m1_value(codes.x >> (4 * i)) * scale;
#pragma unroll
    for (int i = 0; i < 8; ++i) v[8 + i] = e2m1_value(codes.y >> (4 * i)) * scale;
    store_group<T, 16>(out + c * 16, v);
  }
}

// Sums of w^2 and (w - dequant(W))^2 in fp64 (dequant rounded to T, as
// dequantize_kernel writes it), one thread per 16 values, a block's sums
// added to sums[0], sums[1] with one atomic each.
template <typename T, bool kNvfp4>
__global__ void quant_error_kernel(const T* __restrict__ w, const uint8_t* __restrict__ packed,
                                   const uint8_t* __restrict__ scales, const float* __restrict__ global_scale,
                                   int64_t chunks, double* __restrict__ sums) {
  double signal = 0, noise = 0;
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < chunks;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float scale = kNvfp4 ? e4m3_value(scales[c]) / global_scale[0] : e8m0_value(scales[c / 2]);
    const uint2 codes = reinterpret_cast<const uint2*>(packed)[c];
    float v[16];
    load_group<T, 16>(w + c * 16, v);
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const uint32_t word = i < 8 ? codes.x : codes.y;
      const double x = v[i];
      const double dq = to_float(from_float<T>(e2m1_value(word >> (4 * (i % 8))) * scale));
      signal += x * x;
      noise += (x - dq) * (x - dq);
    }
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    signal += __shfl_down_sync(0xffffffffu, signal, offset);
    noise += __shfl_down_sync(0xffffffffu, noise, offset);
  }
  __shared__ double partial[2][kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    partial[0][warp] = signal;
    partial[1][warp] = noise;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0, n = 0;
    for (int i = 0; i < kThreads / 32; ++i) {
      s += partial[0][i];
      n += partial[1][i];
    }
    atomicAdd(sums, s);
    atomicAdd(sums + 1, n);
  }
}

template <typename T>
cudaError_t amax_t(const T* w, int64_t batch, int64_t per_batch, uint32_t* amax_bits, cudaStream_t stream) {
  constexpr int per_vec = 16 / sizeof(T);
  if (per_batch % per_vec != 0 || reinterpret_cast<uintptr_t>(w) % 16 != 0) return cudaErrorMisalignedAddress;
  const int64_t vecs = per_batch / per_vec;
  int blocks = grid_for(vecs);
  blocks = blocks > 2048 ? 2048 : blocks;
  amax_kernel<T><<<dim3(blocks, static_cast<unsigned>(batch)), kThreads, 0, stream>>>(w, per_batch, amax_bits);
  return cudaGetLastError();
}

}  // namespace

cudaError_t fp4_amax(const void* w, bool bf16, int64_t batch, int64_t per_batch, uint32_t* amax_bits,
                     cudaStream_t stream) {
  if (batch <= 0 || per_batch <= 0) return cudaSuccess;
  return bf16 ? amax_t(static_cast<const __nv_bfloat16*>(w), batch, per_batch, amax_bits, stream)
              : amax_t(static_cast<const float*>(w), batch, per_batch, amax_bits, stream);
}

cudaError_t nvfp4_quantize(const void* w, bool bf16, int64_t batch, int64_t rows, int64_t cols,
                           const float* given_global, const uint32_t* amax_bits, float* global_out,
                           uint8_t* packed, uint8_t* scales, void* fake, cudaStream_t stream) {
  if (cols % 16 != 0 || (given_global == nullptr && amax_bits == nullptr)) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(w) % 16 != 0) return cudaErrorMisalignedAddress;
  const int64_t groups_per_batch = rows * (cols / 16);
  if (groups_per_batch * batch == 0) return cudaSuccess;
  const dim3 blocks = batch_grid(groups_per_batch, batch);
  if (bf16) {
    auto* in = static_cast<const __nv_bfloat16*>(w);
    if (fake)
      nvfp4_quantize_kernel<__nv_bfloat16, true><<<blocks, kThreads, 0, stream>>>(
          in, groups_per_batch, batch, given_global, amax_bits, global_out, nullptr, nullptr,
          static_cast<__nv_bfloat16*>(fake));
    else
      nvfp4_quantize_kernel<__nv_bfloat16, false><<<blocks, kThreads, 0, stream>>>(
          in, groups_per_batch, batch, given_global, amax_bits, global_out, packed, scales, nullptr);
  } else {
    auto* in = static_cast<const float*>(w);
    if (fake)
      nvfp4_quantize_kernel<float, true><<<blocks, kThreads, 0, stream>>>(
          in, groups_per_batch, batch, given_global, amax_bits, global_out, nullptr, nullptr,
          static_cast<float*>(fake));
    else
      nvfp4_quantize_kernel<float, false><<<blocks, kThreads, 0, stream>>>(
          in, groups_per_batch, batch, given_global, amax_bits, global_out, packed, scales, nullptr);
  }
  return cudaGetLastError();
}

cudaError_t mxfp4_quantize(const void* w, bool bf16, int64_t rows, int64_t cols, bool ocp, uint8_t* packed,
                           uint8_t* scales, void* fake, cudaStream_t stream) {
  if (cols % 32 != 0) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(w) % 16 != 0) return cudaErrorMisalignedAddress;
  const int64_t groups = rows * (cols / 32);
  if (groups == 0) return cudaSuccess;
  const int blocks = grid_for(groups);
  if (bf16) {
    auto* in = static_cast<const __nv_bfloat16*>(w);
    if (fake)
      mxfp4_quantize_kernel<__nv_bfloat16, true><<<blocks, kThreads, 0, stream>>>(
          in, groups, ocp, nullptr, nullptr, static_cast<__nv_bfloat16*>(fake));
    else
      mxfp4_quantize_kernel<__nv_bfloat16, false><<<blocks, kThreads, 0, stream>>>(in, groups, ocp, packed,
                                                                                     scales, nullptr);
  } else {
    auto* in = static_cast<const float*>(w);
    if (fake)
      mxfp4_quantize_kernel<float, true><<<blocks, kThreads, 0, stream>>>(in, groups, ocp, nullptr, nullptr,
                                                                          static_cast<float*>(fake));
    else
      mxfp4_quantize_kernel<float, false><<<blocks, kThreads, 0, stream>>>(in, groups, ocp, packed, scales,
                                                                           nullptr);
  }
  return cudaGetLastError();
}

cudaError_t fp4_quant_error(const void* w, bool bf16, const uint8_t* packed, const uint8_t* scales,
                            const float* global_scale, int64_t rows, int64_t cols, double* sums, cudaStream_t stream) {
  const bool nvfp4 = global_scale != nullptr;
  if (cols % (nvfp4 ? 16 : 32) != 0) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(packed) % 8 != 0 || reinterpret_cast<uintptr_t>(w) % 16 != 0)
    return cudaErrorMisalignedAddress;
  const int64_t chunks = rows * cols / 16;
  if (chunks == 0) return cudaSuccess;
  int blocks = grid_for(chunks);
  blocks = blocks > 1024 ? 1024 : blocks;
  if (bf16) {
    auto* in = static_cast<const __nv_bfloat16*>(w);
    if (nvfp4)
      quant_error_kernel<__nv_bfloat16, true><<<blocks, kThreads, 0, stream>>>(in, packed, scales, global_scale,
                                                                               chunks, sums);
    else
      quant_error_kernel<__nv_bfloat16, false><<<blocks, kThreads, 0, stream>>>(in, packed, scales, nullptr,
                                                                                chunks, sums);
  } else {
    auto* in = static_cast<const float*>(w);
    if (nvfp4)
      quant_error_kernel<float, true><<<blocks, kThreads, 0, stream>>>(in, packed, scales, global_scale, chunks,
                                                                       sums);
    else
      quant_error_kernel<float, false><<<blocks, kThreads, 0, stream>>>(in, packed, scales, nullptr, chunks, sums);
  }
  return cudaGetLastError();
}

cudaError_t fp4_dequantize(const uint8_t* packed, const uint8_t* scales, const float* global_scale, int64_t batch,
                           int64_t rows, int64_t cols, bool out_bf16, void* out, cudaStream_t stream) {
  const bool nvfp4 = global_scale != nullptr;
  if (cols % (nvfp4 ? 16 : 32) != 0) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(packed) % 8 != 0 || reinterpret_cast<uintptr_t>(out) % 16 != 0)
    return cudaErrorMisalignedAddress;
  const int64_t chunks_per_batch = rows * cols / 16;
  if (chunks_per_batch * batch == 0) return cudaSuccess;
  const dim3 blocks = batch_grid(chunks_per_batch, batch);
  if (out_bf16) {
    auto* dst = static_cast<__nv_bfloat16*>(out);
    if (nvfp4)
      dequantize_kernel<__nv_bfloat16, true><<<blocks, kThreads, 0, stream>>>(packed, scales, global_scale,
                                                                              chunks_per_batch, batch, dst);
    else
      dequantize_kernel<__nv_bfloat16, false><<<blocks, kThreads, 0, stream>>>(packed, scales, nullptr,
                                                                               chunks_per_batch, batch, dst);
  } else {
    auto* dst = static_cast<float*>(out);
    if (nvfp4)
      dequantize_kernel<float, true><<<blocks, kThreads, 0, stream>>>(packed, scales, global_scale,
                                                                      chunks_per_batch, batch, dst);
    else
      dequantize_kernel<float, false><<<blocks, kThreads, 0, stream>>>(packed, scales, nullptr, chunks_per_batch,
                                                                       batch, dst);
  }
  return cudaGetLastError();
}

}  // namespace qerl::kernels::cuda
