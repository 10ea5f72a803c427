// W4A16 matmul on the tensor cores for decode shapes (see fp4_cuda.hpp):
// y = x · dequant(W)ᵀ with W's NVFP4 / MXFP4 codes streamed from global
// memory straight into registers, decoded there to bf16 and fed to
// mma.sync m16n8k16 (fp32 accumulators). The same kernel serves a plain
// Linear (one group of rows) and the MoE experts (blockIdx.y = expert, its
// rows [offsets[e], offsets[e + 1]) of x sorted by expert).
//
// Work split: a block owns 8 * NT output columns (rows of W) and all of its
// x rows (in chunks of 16 * MT); its WARPS warps take the 128-wide K steps
// round robin and are summed through shared memory at the end. Each warp
// issues the loads of up to 4 of its steps (2 for taller x tiles) before it
// decodes and multiplies the first.
//
// Values: a code times its block scale is exact in bf16 (E2M1 x E4M3 has at
// most 6 significant bits; x E8M0 is a power of two), so the tensor cores
// see dequant(W) * G exactly and NVFP4's 1 / G is applied to the fp32 sums.
//
// K order inside a 128-wide step: mma slot pairs {2q, 2q + 1} and
// {2q + 8, 2q + 9} of lane (g = lane / 4, q = lane % 4) in sub-step j hold
// k = 32q + 4j + {0, 1} and {2, 3}. Any order works as long as x and W use
// the same one; this one lets a lane read its 32 codes of a W row as 16
// contiguous bytes and its 32 x values of a row as 64 contiguous bytes.
#include "kernels/cuda/fp4_cuda.hpp"
#include "kernels/cuda/fp4_device.cuh"
#include "kernels/cuda/fp4_matmul_args.cuh"
#include "kernels/cuda/fp4_matmul_decode.cuh"

#include <algorithm>
#include <type_traits>

namespace qerl::kernels::cuda {
namespace {

using namespace device;

using detail::MatmulArgs;

// One lane's share of W for one 128-wide K step and one 8-column tile: its
// 32 codes (16 bytes) and the raw bytes of their block scales (for values
// 0-15 and 16-31), zero past the end of K or of N. The scales are converted
// only when used, so no load waits on another (loads are predicated, not
// branched around, and nothing consumes a loaded value before the batch of
// loads is issued).
struct Slice {
  uint2 codes[2];
  uint32_t scale_bytes[2];
};

__device__ __forceinline__ __nv_bfloat162 bf16_pair(uint16_t bits) {
  __nv_bfloat162 v;
  *reinterpret_cast<uint32_t*>(&v) = static_cast<uint32_t>(bits) * 0x10001u;
  return v;
}

// bf16 bits of an E8M0 scale 2^(code - 127): the code is bf16's exponent
// field (code 0 is the subnormal 2^-127, code 255 gives inf as in fp32).
__device__ __forceinline__ uint16_t e8m0_bf16_bits(uint32_t code) {
  return static_cast<uint16_t>(code == 0 ? 0x0040u : code << 7);
}

// bf16 bits of an E4M3 scale (exact: 4 significant bits).
__device__ __forceinline__ uint16_t e4m3_bf16_bits(uint32_t bits) {
  const __nv_bfloat16 v = __float2bfloat16_rn(e4m3_value(static_cast<uint8_t>(bits)));
  return *reinterpret_cast<const uint16_t*>(&v);
}

template <bool kNvfp4>
__device__ __forceinline__ void load_slice(const uint8_t* row, const uint8_t* row_scales, int64_t K, int64_t k0,
                                           bool row_valid, Slice& s) {
  const int64_t valid = K - k0;  // K % 16 == 0: 0, 16 or >= 32 values of this lane are in range
  const bool lo = row_valid && valid >= 16, hi = row_valid && valid >= 32;
  const int64_t s0 = kNvfp4 ? k0 / 16 : k0 / 32;
  s.codes[0] = lo ? __ldg(reinterpret_cast<const uint2*>(row + k0 / 2)) : make_uint2(0, 0);
  s.codes[1] = hi ? __ldg(reinterpret_cast<const uint2*>(row + k0 / 2 + 8)) : make_uint2(0, 0);
  s.scale_bytes[0] = lo ? __ldg(row_scales + s0) : 0u;
  s.scale_bytes[1] = kNvfp4 ? (hi ? __ldg(row_scales + s0 + 1) : 0u) : s.scale_bytes[0];
}

// Codes word `w` (values 8w .. 8w + 7) of a slice -> 4 bf16x2 B-fragment words.
template <bool kNvfp4>
__device__ __forceinline__ void decode_word(const Slice& s, int w, uint32_t (&d)[4]) {
  const uint32_t word = w == 0 ? s.codes[0].x : w == 1 ? s.codes[0].y : w == 2 ? s.codes[1].x : s.codes[1].y;
  e2m1x8_to_bf16x8(word, d);
  const uint32_t raw = s.scale_bytes[w / 2];
  const __nv_bfloat162 scale = bf16_pair(kNvfp4 ? e4m3_bf16_bits(raw) : e8m0_bf16_bits(raw));
#pragma unroll
  for (int i = 0; i < 4; ++i) d[i] = bf16x2_mul(d[i], scale);
}

template <int MT, int NT, int WARPS, bool kNvfp4>
__global__ void __launch_bounds__(WARPS * 32, MT <= 2 ? 2 : 1) fp4_mma_kernel(MatmulArgs a) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  const int64_t e = blockIdx.y;
  const int64_t row_begin = a.offsets ? a.offsets[e] : 0;
  const int64_t row_end = a.offsets ? a.offsets[e + 1] : a.M;
  if (row_begin >= row_end) return;
  const int64_t n_base = static_cast<int64_t>(blockIdx.x) * 8 * NT;
  constexpr int group = kNvfp4 ? 16 : 32;
  const int64_t K = a.K;
  const uint8_t* code_rows[NT];
  const uint8_t* scale_rows[NT];
  bool row_valid[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int64_t n = n_base + nt * 8 + g;
    row_valid[nt] = n < a.N;
    code_rows[nt] = a.packed + (e * a.N + n) * (K / 2);
    scale_rows[nt] = a.scales + (e * a.N + n) * (K / group);
  }
  const float inv_global = kNvfp4 ? 1.0f / a.global_scale[e] : 1.0f;
  const int64_t steps = (K + 127) / 128;
  constexpr int kDepth = MT == 1 ? 4 : 2;  // K steps of loads in flight per warp
  __shared__ float partial[MT * NT * 4][WARPS][32];

  for (int64_t m_base = row_begin; m_base < row_end; m_base += 16 * MT) {
    float acc[MT][NT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[mt][nt][c] = 0.f;
    const __nv_bfloat16* x_rows[MT][2];
    bool x_valid[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t r = m_base + mt * 16 + g + 8 * h;
        x_valid[mt][h] = r < row_end;
        x_rows[mt][h] = a.x + r * K;
      }

    // The warp's K steps in batches of kDepth: every load of a batch is
    // issued before the first is used, so a warp waits for memory once per
    // batch (for K = 4096 its whole share of W is one batch).
    for (int64_t first = warp; first < steps; first += WARPS * kDepth) {
      Slice batch[kDepth][NT];
#pragma unroll
      for (int d = 0; d < kDepth; ++d) {
        const int64_t step = first + d * WARPS;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
          load_slice<kNvfp4>(code_rows[nt], scale_rows[nt], K, step * 128 + 32 * q, row_valid[nt] && step < steps,
                             batch[d][nt]);
      }
#pragma unroll
      for (int d = 0; d < kDepth; ++d) {
        const int64_t step = first + d * WARPS;
        if (step >= steps) break;
        const int64_t k0 = step * 128 + 32 * q;
        // One x tile (decode rows): the step's x first, so that its latency
        // overlaps the decoding (the lane's 32 values of k, 4 16-byte loads
        // per row); taller tiles load per sub-step pair (registers).
        auto load_x = [&](int mt, int h, int w) {
          return x_valid[mt][h] && k0 + 8 * w < K ? *reinterpret_cast<const uint4*>(x_rows[mt][h] + k0 + 8 * w)
                                                  : make_uint4(0, 0, 0, 0);
        };
        uint4 xs[2][4];
        if constexpr (MT == 1) {
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int w = 0; w < 4; ++w) xs[h][w] = load_x(0, h, w);
        }
        // Sub-steps in pairs: codes word w holds sub-steps 2w and 2w + 1, and
        // one 16-byte load of an x row covers the same 8 values of k.
#pragma unroll
        for (int w = 0; w < 4; ++w) {
          uint32_t b[NT][4];
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) decode_word<kNvfp4>(batch[d][nt], w, b[nt]);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            const uint4 x0 = MT == 1 ? xs[0][w] : load_x(mt, 0, w), x1 = MT == 1 ? xs[1][w] : load_x(mt, 1, w);
            const uint32_t a0[4] = {x0.x, x1.x, x0.y, x1.y}, a1[4] = {x0.z, x1.z, x0.w, x1.w};
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
              mma_bf16_16816(acc[mt][nt], a0, b[nt][0], b[nt][1]);
              mma_bf16_16816(acc[mt][nt], a1, b[nt][2], b[nt][3]);
            }
          }
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
        v *= inv_global;
        if (a.bias) v += __bfloat162float(a.bias[n]);
        a.y[r * a.N + n] = __float2bfloat16_rn(v);
      }
    }
    __syncthreads();
  }
}

template <int MT, bool kNvfp4>
cudaError_t launch(const MatmulArgs& a, int64_t experts, cudaStream_t stream) {
  constexpr int WARPS = 8;
  // Two column tiles per block share each x load and halve the blocks that
  // re-read x; one tile for narrow layers, whose blocks would not fill the GPU.
  if (MT > 1 || a.N >= 4096) {
    const dim3 grid(static_cast<unsigned>((a.N + 15) / 16), static_cast<unsigned>(experts));
    fp4_mma_kernel<MT, 2, WARPS, kNvfp4><<<grid, WARPS * 32, 0, stream>>>(a);
  } else {
    const dim3 grid(static_cast<unsigned>((a.N + 7) / 8), static_cast<unsigned>(experts));
    fp4_mma_kernel<MT, 1, WARPS, kNvfp4><<<grid, WARPS * 32, 0, stream>>>(a);
  }
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
  // 8-byte loads of codes (row stride K / 2, a multiple of 8), 16-byte loads of x (row stride 2K, a multiple of 32).
  if (reinterpret_cast<uintptr_t>(packed) % 8 != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0)
    return cudaErrorMisalignedAddress;
  return cudaSuccess;
}

}  // namespace

int fp4_mma_tiles(int64_t rows) { return rows <= 16 ? 1 : rows <= 32 ? 2 : rows <= 48 ? 3 : 4; }

namespace {
DecodeKernel decode_kernel = DecodeKernel::automatic;
}  // namespace

void fp4_select_decode_kernel(DecodeKernel kernel) { decode_kernel = kernel; }
DecodeKernel fp4_decode_kernel() { return decode_kernel; }

namespace {
// The decode kernel's variant for a selection (automatic: the given
// default; stream only for grouped experts).
detail::DecodeVariant variant_of(DecodeKernel kernel, detail::DecodeVariant automatic, bool grouped) {
  switch (kernel) {
    case DecodeKernel::narrow: return detail::DecodeVariant::narrow;
    case DecodeKernel::wide: return detail::DecodeVariant::wide;
    case DecodeKernel::compact: return detail::DecodeVariant::compact;
    case DecodeKernel::stream: return grouped ? detail::DecodeVariant::stream : automatic;
    default: return automatic;
  }
}
}  // namespace

cudaError_t fp4_matmul_bf16(const __nv_bfloat16* x, int64_t M, int64_t K, const uint8_t* packed,
                            const uint8_t* scales, const float* global_scale, int64_t N, const __nv_bfloat16* bias,
                            __nv_bfloat16* y, cudaStream_t stream) {
  if (const cudaError_t bad = check_args(x, K, packed); bad != cudaSuccess) return bad;
  if (global_scale == nullptr && K % 32 != 0) return cudaErrorInvalidValue;
  if (M <= 0 || N <= 0) return cudaSuccess;
  // Up to 32 rows the decode kernel, in one pass (four 8-row x tiles per
  // decoded W fragment past 16 rows).
  const int64_t decode_rows = M;
  if (decode_kernel != DecodeKernel::general &&
      detail::fp4_decode_fits(decode_rows, K, N, x, packed, scales, global_scale != nullptr)) {
    const detail::DecodeArgs d{x, static_cast<int>(K), static_cast<int>(N), packed, scales, global_scale,
                               bias, nullptr, static_cast<int>(M), y};
    return detail::fp4_decode_matmul(d, decode_rows, 1, variant_of(decode_kernel, detail::DecodeVariant::wide, false), stream);
  }
  const MatmulArgs a{x, K, N, packed, scales, global_scale, bias, nullptr, M, y};
  const int mt = fp4_mma_tiles(M);
  return global_scale ? launch_mt<true>(a, mt, 1, stream) : launch_mt<false>(a, mt, 1, stream);
}

cudaError_t bf16_grouped_decode_bf16(const __nv_bfloat16* x, const int32_t* offsets, int64_t experts,
                                     int64_t rows_per_group, const __nv_bfloat16* w, int64_t N, int64_t K,
                                     __nv_bfloat16* y, cudaStream_t stream) {
  return detail::bf16_grouped_decode_matmul(x, offsets, experts, rows_per_group, w, N, K, y, stream);
}

bool bf16_grouped_decode_fits(int64_t rows_per_group, int64_t K, int64_t N, const void* x, const void* w) {
  return detail::bf16_grouped_decode_fits(rows_per_group, K, N, x, w);
}

cudaError_t fp4_grouped_matmul_bf16(const __nv_bfloat16* x, const int32_t* offsets, int64_t experts,
                                    int64_t rows_hint, int64_t K, const uint8_t* packed, const uint8_t* scales,
                                    const float* global_scale, int64_t N, __nv_bfloat16* y, cudaStream_t stream) {
  if (const cudaError_t bad = check_args(x, K, packed); bad != cudaSuccess) return bad;
  if (global_scale == nullptr && K % 32 != 0) return cudaErrorInvalidValue;
  if (experts <= 0 || N <= 0 || experts > 65535) return experts > 65535 ? cudaErrorInvalidValue : cudaSuccess;
  // Experts get uneven row counts around the hint: up to a hint of 32 the
  // decode kernel takes them, in passes of 16 rows whose codes a second
  // pass reads from L2 (the general kernel is slower there: engine_bench,
  // bench/NOTES.md); a pass of 32 would leave most of its x tiles empty
  // for the experts below the hint. By default its stream variant
  // (persistent warps; measured fastest from 8 tokens of the A2.7B MoE
  // layer up: bench/NOTES.md).
  const int64_t decode_rows = rows_hint <= 32 ? std::min<int64_t>(rows_hint, 16) : rows_hint;
  if (decode_kernel != DecodeKernel::general &&
      detail::fp4_decode_fits(decode_rows, K, N, x, packed, scales, global_scale != nullptr)) {
    const detail::DecodeArgs d{x, static_cast<int>(K), static_cast<int>(N), packed, scales, global_scale,
                               nullptr, offsets, 0, y};
    return detail::fp4_decode_matmul(d, std::max<int64_t>(decode_rows, 1), experts,
                                     variant_of(decode_kernel, detail::DecodeVariant::stream, true), stream);
  }
  const MatmulArgs a{x, K, N, packed, scales, global_scale, nullptr, offsets, 0, y};
  const int mt = fp4_mma_tiles(rows_hint);
  return global_scale ? launch_mt<true>(a, mt, experts, stream) : launch_mt<false>(a, mt, experts, stream);
}

}  // namespace qerl::kernels::cuda

namespace qerl::kernels::cuda {
namespace {

// One thread per 8 hidden values of one token.
__device__ inline float weight_at(const float* w, int64_t i) { return w[i]; }
__device__ inline float weight_at(const __nv_bfloat16* w, int64_t i) { return __bfloat162float(w[i]); }

// bf16 weights: each weighted term rounded to bf16, as a bf16 product is.
template <typename Weight>
__global__ void moe_mix_kernel(const __nv_bfloat16* __restrict__ y, const int64_t* __restrict__ position,
                               const Weight* __restrict__ weights, int64_t tokens, int64_t top_k, int64_t hidden,
                               __nv_bfloat16* __restrict__ out) {
  constexpr bool round_products = std::is_same_v<Weight, __nv_bfloat16>;
  const int64_t vecs = hidden / 8;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < tokens * vecs;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / vecs, h = (i % vecs) * 8;
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    for (int64_t s = 0; s < top_k; ++s) {
      const float w = weight_at(weights, t * top_k + s);
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

cudaError_t moe_mix_bf16(const __nv_bfloat16* y, const int64_t* position, const void* weights, bool bf16_weights,
                         int64_t tokens, int64_t top_k, int64_t hidden, __nv_bfloat16* out, cudaStream_t stream) {
  if (hidden % 8 != 0) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(y) % 16 != 0 || reinterpret_cast<uintptr_t>(out) % 16 != 0)
    return cudaErrorMisalignedAddress;
  const int64_t work = tokens * (hidden / 8);
  if (work == 0) return cudaSuccess;
  const int64_t blocks = (work + 255) / 256;
  const auto grid = static_cast<unsigned>(blocks < (1 << 20) ? blocks : (1 << 20));
  if (bf16_weights)
    moe_mix_kernel<<<grid, 256, 0, stream>>>(y, position, static_cast<const __nv_bfloat16*>(weights), tokens, top_k,
                                             hidden, out);
  else
    moe_mix_kernel<<<grid, 256, 0, stream>>>(y, position, static_cast<const float*>(weights), tokens, top_k, hidden,
                                             out);
  return cudaGetLastError();
}

}  // namespace qerl::kernels::cuda
