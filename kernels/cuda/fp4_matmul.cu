// W4A16 matmul on the tensor cores for decode shapes (see fp4_cuda.hpp):
// y = x · dequant(W)ᵀ with W's NVFP4 / MXFP4 codes streamed from global
// memory straight into registers, decoded there to bf16 and fed to
// mma.sync m16n8k16 (fp32 accumulators). The same kernel serves a plain
// Linear (one group of rows) and the MoE experts (blockIdx.y = expert, its
// rows [offsets[e], offsets[e + 1]) of x sorted by expert).
//
// Work split: a block owns 8 * NT output columns (rows of W) and all of its
// x rows (in chunks of 16 * MT); its WARPS warps take the 128-wide K steps
// round robin and are summed through shared memory at the end.
//
// K order inside a 128-wide step: mma slot pairs {2q, 2q + 1} and
// {2q + 8, 2q + 9} of lane (g = lane / 4, q = lane % 4) in sub-step j hold
// k = 32q + 4j + {0, 1} and {2, 3}. Any order works as long as x and W use
// the same one; this one lets a lane read its 32 codes of a W row as 16
// contiguous bytes and its x values as 8 contiguous bytes per sub-step.
#include "kernels/cuda/fp4_cuda.hpp"
#include "kernels/cuda/fp4_device.cuh"

namespace qerl::kernels::cuda {
namespace {

using namespace device;

struct MatmulArgs {
  const __nv_bfloat16* x;    // [rows, K]
  int64_t K, N;
  const uint8_t* packed;     // [E, N, K / 2]
  const uint8_t* scales;     // [E, N, K / group]
  const float* global_scale; // [E] (NVFP4) or null (MXFP4)
  const __nv_bfloat16* bias; // [N] or null
  const int32_t* offsets;    // [E + 1] or null: rows [0, M)
  int64_t M;
  __nv_bfloat16* y;          // [rows, N]
};

// The 32 codes (16 bytes, two uint2) of W row n from k = kb + 32q, zero
// where they pass the end of K (K is a multiple of 16: 0, 16 or 32 valid).
__device__ __forceinline__ void load_codes(const uint8_t* row, int64_t K, int64_t k0, uint2 (&c)[2]) {
  const int64_t valid = K - k0;
  c[0] = valid >= 16 ? *reinterpret_cast<const uint2*>(row + k0 / 2) : make_uint2(0, 0);
  c[1] = valid >= 32 ? *reinterpret_cast<const uint2*>(row + k0 / 2 + 8) : make_uint2(0, 0);
}

template <bool kNvfp4>
__device__ __forceinline__ void load_scales(const uint8_t* row_scales, const float* global, int64_t k0, int64_t K,
                                            __nv_bfloat162 (&s)[2]) {
  float v[2] = {0.f, 0.f};
  if (kNvfp4) {
    const float g = *global;
    if (k0 < K) v[0] = e4m3_value(row_scales[k0 / 16]) / g;
    if (k0 + 16 < K) v[1] = e4m3_value(row_scales[k0 / 16 + 1]) / g;
  } else if (k0 < K) {
    v[0] = v[1] = e8m0_value(row_scales[k0 / 32]);
  }
  s[0] = __float2bfloat162_rn(v[0]);
  s[1] = __float2bfloat162_rn(v[1]);
}

// Codes -> 16 bf16x2 words: word i holds the lane's values 2i, 2i + 1.
__device__ __forceinline__ void decode(const uint2 (&c)[2], const __nv_bfloat162 (&s)[2], uint32_t (&d)[16]) {
  const uint32_t words[4] = {c[0].x, c[0].y, c[1].x, c[1].y};
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    uint32_t out[4];
    e2m1x8_to_bf16x8(words[w], out);
#pragma unroll
    for (int i = 0; i < 4; ++i) d[w * 4 + i] = bf16x2_mul(out[i], s[w / 2]);
  }
}

template <int MT, int NT, int WARPS, bool kNvfp4>
__global__ void __launch_bounds__(WARPS * 32) fp4_mma_kernel(MatmulArgs a) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  const int64_t e = blockIdx.y;
  const int64_t row_begin = a.offsets ? a.offsets[e] : 0;
  const int64_t row_end = a.offsets ? a.offsets[e + 1] : a.M;
  if (row_begin >= row_end) return;
  const int64_t n_base = static_cast<int64_t>(blockIdx.x) * 8 * NT;
  constexpr int group = kNvfp4 ? 16 : 32;
  const uint8_t* codes = a.packed + e * a.N * (a.K / 2);
  const uint8_t* scales = a.scales + e * a.N * (a.K / group);
  const float* global = kNvfp4 ? a.global_scale + e : nullptr;
  const int64_t steps = (a.K + 127) / 128;
  __shared__ float partial[MT * NT * 4][WARPS][32];

  for (int64_t m_base = row_begin; m_base < row_end; m_base += 16 * MT) {
    float acc[MT][NT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[mt][nt][c] = 0.f;

    for (int64_t step = warp; step < steps; step += WARPS) {
      const int64_t k0 = step * 128 + 32 * q;
      uint32_t b[NT][16];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const int64_t n = n_base + nt * 8 + g;
        uint2 c[2] = {make_uint2(0, 0), make_uint2(0, 0)};
        __nv_bfloat162 s[2] = {__float2bfloat162_rn(0.f), __float2bfloat162_rn(0.f)};
        if (n < a.N) {
          load_codes(codes + n * (a.K / 2), a.K, k0, c);
          load_scales<kNvfp4>(scales + n * (a.K / group), global, k0, a.K, s);
        }
        decode(c, s, b[nt]);
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const bool k_valid = k0 + 4 * j < a.K;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          const int64_t r0 = m_base + mt * 16 + g, r1 = r0 + 8;
          uint2 x0 = make_uint2(0, 0), x1 = make_uint2(0, 0);
          if (k_valid && r0 < row_end) x0 = *reinterpret_cast<const uint2*>(a.x + r0 * a.K + k0 + 4 * j);
          if (k_valid && r1 < row_end) x1 = *reinterpret_cast<const uint2*>(a.x + r1 * a.K + k0 + 4 * j);
          const uint32_t af[4] = {x0.x, x1.x, x0.y, x1.y};
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) mma_bf16_16816(acc[mt][nt], af, b[nt][2 * j], b[nt][2 * j + 1]);
        }
      }
    }

    // Sum the warps' partial sums; each thread then writes a share of the tile.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c) partial[(mt * NT + nt) * 4 + c][warp][lane] = acc[mt][nt][c];
    __syncthreads();
    for (int idx = threadIdx.x; idx < MT * NT * 4 * 32; idx += WARPS * 32) {
      const int i = idx / 32, l = idx % 32;
      float v = 0.f;
#pragma unroll
      for (int w = 0; w < WARPS; ++w) v += partial[i][w][l];
      const int mt = i / (NT * 4), nt = (i / 4) % NT, c = i % 4;
      const int64_t r = m_base + mt * 16 + l / 4 + (c >= 2 ? 8 : 0);
      const int64_t n = n_base + nt * 8 + 2 * (l % 4) + (c & 1);
      if (r < row_end && n < a.N) {
        if (a.bias) v += __bfloat162float(a.bias[n]);
        a.y[r * a.N + n] = __float2bfloat16_rn(v);
      }
    }
    __syncthreads();
  }
}

template <int MT, bool kNvfp4>
cudaError_t launch(const MatmulArgs& a, int64_t experts, cudaStream_t stream) {
  constexpr int NT = 2, WARPS = 8;
  const dim3 grid(static_cast<unsigned>((a.N + 8 * NT - 1) / (8 * NT)), static_cast<unsigned>(experts));
  fp4_mma_kernel<MT, NT, WARPS, kNvfp4><<<grid, WARPS * 32, 0, stream>>>(a);
  return cudaGetLastError();
}

template <bool kNvfp4>
cudaError_t launch_mt(const MatmulArgs& a, int mt, int64_t experts, cudaStream_t stream) {
  switch (mt) {
    case 1: return launch<1, kNvfp4>(a, experts, stream);
    case 2: return launch<2, kNvfp4>(a, experts, stream);
    case 3: return launch<3, kNvfp4>(a, experts, stream);
    default: return launch<4, kNvfp4>(a, experts, stream);
  }
}

cudaError_t check_args(const __nv_bfloat16* x, int64_t K, const uint8_t* packed) {
  if (K % 16 != 0) return cudaErrorInvalidValue;
  // 8-byte loads of codes (row stride K / 2, a multiple of 8) and of x (4 values).
  if (reinterpret_cast<uintptr_t>(packed) % 8 != 0 || reinterpret_cast<uintptr_t>(x) % 8 != 0)
    return cudaErrorMisalignedAddress;
  return cudaSuccess;
}

}  // namespace

int fp4_mma_tiles(int64_t rows) { return rows <= 16 ? 1 : rows <= 32 ? 2 : rows <= 48 ? 3 : 4; }

cudaError_t fp4_matmul_bf16(const __nv_bfloat16* x, int64_t M, int64_t K, const uint8_t* packed,
                            const uint8_t* scales, const float* global_scale, int64_t N, const __nv_bfloat16* bias,
                            __nv_bfloat16* y, cudaStream_t stream) {
  if (const cudaError_t bad = check_args(x, K, packed); bad != cudaSuccess) return bad;
  if (global_scale == nullptr && K % 32 != 0) return cudaErrorInvalidValue;
  if (M <= 0 || N <= 0) return cudaSuccess;
  const MatmulArgs a{x, K, N, packed, scales, global_scale, bias, nullptr, M, y};
  const int mt = fp4_mma_tiles(M);
  return global_scale ? launch_mt<true>(a, mt, 1, stream) : launch_mt<false>(a, mt, 1, stream);
}

cudaError_t fp4_grouped_matmul_bf16(const __nv_bfloat16* x, const int32_t* offsets, int64_t experts,
                                    int64_t rows_hint, int64_t K, const uint8_t* packed, const uint8_t* scales,
                                    const float* global_scale, int64_t N, __nv_bfloat16* y, cudaStream_t stream) {
  if (const cudaError_t bad = check_args(x, K, packed); bad != cudaSuccess) return bad;
  if (global_scale == nullptr && K % 32 != 0) return cudaErrorInvalidValue;
  if (experts <= 0 || N <= 0 || experts > 65535) return experts > 65535 ? cudaErrorInvalidValue : cudaSuccess;
  const MatmulArgs a{x, K, N, packed, scales, global_scale, nullptr, offsets, 0, y};
  const int mt = fp4_mma_tiles(rows_hint);
  return global_scale ? launch_mt<true>(a, mt, experts, stream) : launch_mt<false>(a, mt, experts, stream);
}

}  // namespace qerl::kernels::cuda

namespace qerl::kernels::cuda {
namespace {

// One thread per 8 hidden values of one token.
__global__ void moe_mix_kernel(const __nv_bfloat16* __restrict__ y, const int64_t* __restrict__ position,
                               const float* __restrict__ weights, int64_t tokens, int64_t top_k, int64_t hidden,
                               bool round_products, __nv_bfloat16* __restrict__ out) {
  const int64_t vecs = hidden / 8;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < tokens * vecs;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / vecs, h = (i % vecs) * 8;
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    for (int64_t s = 0; s < top_k; ++s) {
      const float w = weights[t * top_k + s];
      const uint4 raw = *reinterpret_cast<const uint4*>(y + position[t * top_k + s] * hidden + h);
      const __nv_bfloat16* v = reinterpret_cast<const __nv_bfloat16*>(&raw);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float p = __bfloat162float(v[j]) * w;
        acc[j] += round_products ? device::round_bf16(p) : p;
      }
    }
    uint4 packed;
    __nv_bfloat16* o = reinterpret_cast<__nv_bfloat16*>(&packed);
#pragma unroll
    for (int j = 0; j < 8; ++j) o[j] = __float2bfloat16_rn(acc[j]);
    *reinterpret_cast<uint4*>(out + t * hidden + h) = packed;
  }
}

}  // namespace

cudaError_t moe_mix_bf16(const __nv_bfloat16* y, const int64_t* position, const float* weights, int64_t tokens,
                         int64_t top_k, int64_t hidden, bool round_products, __nv_bfloat16* out,
                         cudaStream_t stream) {
  if (hidden % 8 != 0) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(y) % 16 != 0 || reinterpret_cast<uintptr_t>(out) % 16 != 0)
    return cudaErrorMisalignedAddress;
  const int64_t work = tokens * (hidden / 8);
  if (work == 0) return cudaSuccess;
  const int64_t blocks = (work + 255) / 256;
  moe_mix_kernel<<<static_cast<unsigned>(blocks < (1 << 20) ? blocks : (1 << 20)), 256, 0, stream>>>(
      y, position, weights, tokens, top_k, hidden, round_products, out);
  return cudaGetLastError();
}

}  // namespace qerl::kernels::cuda
