// W4A16 for decode (v6): y = x · dequant(W)ᵀ with at most 16 rows of x,
// the product computed transposed, yᵀ = dequant(W) · xᵀ, so that W is the
// tensor cores' 16-row A operand and x the 8-column B operand of
// mma.sync m16n8k16: one x row fills a column of the tile, and with 1-8
// rows no half of any fragment is zero padding (the v4 kernel, x as A, used
// 1 of the 16 rows at M = 1 and decoded each W value for two MMAs).
//
// A block of 8 warps owns 16 rows of W (16 outputs per x row); its warps
// take the 128-wide K steps round robin and are summed through shared
// memory. Per step a lane reads 16 bytes of codes of W rows g and g + 8,
// their block scales (16 bits NVFP4, one byte MXFP4) and 16 bytes of x per
// 8 values of k; the codes and scales of a warp's next kRing steps are in
// flight in a ring of registers while it decodes the current one, and the
// next step's x while it multiplies this one. All offsets are 32-bit, and
// rows past N or past the group's end are clamped to the last valid row
// (read, never stored), so no load but the K tail's is predicated.
//
// K order inside a step (any works if W and x agree): in sub-step
// j = 2w + h of lane (g = lane / 4, q = lane % 4), MMA k-slots {2q, 2q + 1}
// hold k = 32q + 8w + 4h + {0, 1} and {2q + 8, 2q + 9} hold + {2, 3}, so a
// lane's codes word w and its x load w cover the same 8 values of k.
//
// Values: code x block scale is exact in bf16 (as in v4); NVFP4's 1 / G is
// applied to the fp32 sums.
#include "kernels/cuda/fp4_device.cuh"
#include "kernels/cuda/fp4_matmul_decode.cuh"

#include <cuda_fp8.h>

namespace qerl::kernels::cuda::detail {
namespace {

using namespace device;


// Predicated loads that leave `v` as it was when `pred` is false (no branch,
// no zeroing). Codes are read once (not kept in L1); x, read by every
// block, is cached.
__device__ __forceinline__ void load_codes_if(uint4& v, const void* p, bool pred) {
  asm("{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n"
      " @p ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n}\n"
      : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)
      : "l"(p), "r"(static_cast<int>(pred)));
}

__device__ __forceinline__ void load_x_if(uint4& v, const void* p, bool pred) {
  asm("{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n @p ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];\n}\n"
      : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)
      : "l"(p), "r"(static_cast<int>(pred)));
}

// The lane's block-scale bits of a step: two E4M3 bytes (NVFP4) or one E8M0 byte (MXFP4), zero-extended.
template <bool kNvfp4>
__device__ __forceinline__ void load_scales_if(uint32_t& v, const void* p, bool pred) {
  if constexpr (kNvfp4)
    asm("{\n .reg .pred p;\n setp.ne.b32 p, %2, 0;\n @p ld.global.nc.u16 %0, [%1];\n}\n"
        : "+r"(v)
        : "l"(p), "r"(static_cast<int>(pred)));
  else
    asm("{\n .reg .pred p;\n setp.ne.b32 p, %2, 0;\n @p ld.global.nc.u8 %0, [%1];\n}\n"
        : "+r"(v)
        : "l"(p), "r"(static_cast<int>(pred)));
}

// One warp's share of W for one K step: the lane's 32 codes of rows g and
// g + 8 and the raw bits of their block scales.
struct Slot {
  uint4 codes[2];
  uint32_t scales[2];
};

// The two bf16x2 scale words of a row: for codes words 0-1 and 2-3.
template <bool kNvfp4>
__device__ __forceinline__ void scale_pairs(uint32_t raw, uint32_t (&pair)[2]) {
  if constexpr (kNvfp4) {
    // Two E4M3 scales -> two halves (exact) -> two floats -> bf16x2 (exact: 4 significant bits).
    __half2 h;
    h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(raw), __NV_E4M3);
    const float2 f = __half22float2(h);
    const __nv_bfloat162 b = __floats2bfloat162_rn(f.x, f.y);
    const uint32_t bits = *reinterpret_cast<const uint32_t*>(&b);
    pair[0] = prmt(bits, 0, 0x1010);
    pair[1] = prmt(bits, 0, 0x3232);
  } else {
    // E8M0 code c is bf16's exponent field (c = 0: the subnormal 2^-127).
    const uint32_t bits = raw == 0 ? 0x0040u : raw << 7;
    pair[0] = pair[1] = bits * 0x10001u;
  }
}

// acc[mb] += the step's 16 W rows x 128 k times x rows of tile mb; x_word(w,
// xw) gives the lane's 8 values of k for codes word w of each tile.
template <int MB, bool kNvfp4, class XWord>
__device__ __forceinline__ void mma_step(const Slot& s, XWord&& x_word, float (&acc)[MB][4]) {
  uint32_t sa[2], sb[2];
  scale_pairs<kNvfp4>(s.scales[0], sa);
  scale_pairs<kNvfp4>(s.scales[1], sb);
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    uint4 xw[MB];
    x_word(w, xw);
    const uint32_t wa = w == 0 ? s.codes[0].x : w == 1 ? s.codes[0].y : w == 2 ? s.codes[0].z : s.codes[0].w;
    const uint32_t wb = w == 0 ? s.codes[1].x : w == 1 ? s.codes[1].y : w == 2 ? s.codes[1].z : s.codes[1].w;
    uint32_t da[4], db[4];
    e2m1x8_to_bf16x8(wa, da);
    e2m1x8_to_bf16x8(wb, db);
    const __nv_bfloat162 scale_a = *reinterpret_cast<const __nv_bfloat162*>(&sa[w / 2]);
    const __nv_bfloat162 scale_b = *reinterpret_cast<const __nv_bfloat162*>(&sb[w / 2]);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      da[i] = bf16x2_mul(da[i], scale_a);
      db[i] = bf16x2_mul(db[i], scale_b);
    }
    const uint32_t a0[4] = {da[0], db[0], da[1], db[1]}, a1[4] = {da[2], db[2], da[3], db[3]};
#pragma unroll
    for (int mb = 0; mb < MB; ++mb) {
      mma_bf16_16816(acc[mb], a0, xw[mb].x, xw[mb].y);
      mma_bf16_16816(acc[mb], a1, xw[mb].z, xw[mb].w);
    }
  }
}

// The lane's pointers into one 16-row tile of W (rows n_base + g and
// n_base + g + 8 of expert e, clamped into W: outputs past N are not
// stored), at K step 0.
struct TilePointers {
  const uint8_t* codes[2];
  const uint8_t* scales[2];
};

template <bool kNvfp4>
__device__ __forceinline__ TilePointers tile_pointers(const DecodeArgs& a, int e, int n_base, int g, int q) {
  constexpr int kScaleBytes = kNvfp4 ? 8 : 4;  // block-scale bytes of one row per 128-wide step
  TilePointers t;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t n = static_cast<int64_t>(e) * a.N + min(n_base + g + 8 * r, a.N - 1);
    t.codes[r] = a.packed + n * (a.K / 2) + 16 * q;
    t.scales[r] = a.scales + n * (a.K / (kNvfp4 ? 16 : 32)) + kScaleBytes / 4 * q;
  }
  return t;
}

// The lane's x row of tile mb in a pass at m_base (B column g of the
// tile), clamped into the group's rows, at k = 32q.
__device__ __forceinline__ const __nv_bfloat16* x_row(const DecodeArgs& a, int m_base, int mb, int row_end, int g,
                                                      int q) {
  return a.x + static_cast<int64_t>(min(m_base + 8 * mb + g, row_end - 1)) * a.K + 32 * q;
}

// acc[mb] += one 16-row tile of W times the x rows of tile mb (x_row) over the K steps first, first + kStride, ... of
// the full 128-wide steps, and the K tail (32, 64 or 96 values: lanes with
// 32q < tail) if first == full % kStride. The codes of the next kRing of
// these steps are in flight in a ring of registers while one is decoded;
// kWholeStepX: a step's x loaded before its decoding (else each codes
// word's x just before that word is decoded: fewer registers).
template <int MB, bool kNvfp4, int kStride, int kRing, bool kWholeStepX>
__device__ __forceinline__ void accumulate_tile(const DecodeArgs& a, const TilePointers& t, int m_base, int row_end,
                                                int first, int full, int tail, int g, int q, float (&acc)[MB][4]) {
  constexpr int kScaleBytes = kNvfp4 ? 8 : 4;
  // Pointers advance once per kRing steps so that every load in the
  // unrolled body has a constant offset.
  const uint8_t* cp[2] = {t.codes[0] + first * 64, t.codes[1] + first * 64};
  const uint8_t* sp[2] = {t.scales[0] + first * kScaleBytes, t.scales[1] + first * kScaleBytes};
  const __nv_bfloat16* xp[MB];
#pragma unroll
  for (int mb = 0; mb < MB; ++mb) xp[mb] = x_row(a, m_base, mb, row_end, g, q) + first * 128;
  Slot ring[kRing] = {};
#pragma unroll
  for (int d = 0; d < kRing; ++d) {
    const bool in = first + d * kStride < full;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      load_codes_if(ring[d].codes[r], cp[r] + d * kStride * 64, in);
      load_scales_if<kNvfp4>(ring[d].scales[r], sp[r] + d * kStride * kScaleBytes, in);
    }
  }
  for (int base = first; base < full; base += kRing * kStride) {
#pragma unroll
    for (int d = 0; d < kRing; ++d) {
      const int step = base + d * kStride;
      if (step >= full) break;
      auto load = [&](int mb, int w) {
        return __ldg(reinterpret_cast<const uint4*>(xp[mb] + d * kStride * 128 + 8 * w));
      };
      if constexpr (kWholeStepX) {
        uint4 x[MB][4];
#pragma unroll
        for (int mb = 0; mb < MB; ++mb)
#pragma unroll
          for (int w = 0; w < 4; ++w) x[mb][w] = load(mb, w);
        mma_step<MB, kNvfp4>(ring[d], [&](int w, uint4(&xw)[MB]) {
#pragma unroll
          for (int mb = 0; mb < MB; ++mb) xw[mb] = x[mb][w];
        }, acc);
      } else {
        mma_step<MB, kNvfp4>(ring[d], [&](int w, uint4(&xw)[MB]) {
#pragma unroll
          for (int mb = 0; mb < MB; ++mb) xw[mb] = load(mb, w);
        }, acc);
      }
      // Refilled once consumed (its registers are free then: no copies).
      const bool next = step + kRing * kStride < full;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        load_codes_if(ring[d].codes[r], cp[r] + (d + kRing) * kStride * 64, next);
        load_scales_if<kNvfp4>(ring[d].scales[r], sp[r] + (d + kRing) * kStride * kScaleBytes, next);
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      cp[r] += kRing * kStride * 64;
      sp[r] += kRing * kStride * kScaleBytes;
    }
#pragma unroll
    for (int mb = 0; mb < MB; ++mb) xp[mb] += kRing * kStride * 128;
  }
  if (tail != 0 && first == full % kStride) {
    const bool in = 32 * q < tail;
    Slot s = {};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      load_codes_if(s.codes[r], t.codes[r] + full * 64, in);
      load_scales_if<kNvfp4>(s.scales[r], t.scales[r] + full * kScaleBytes, in);
    }
    mma_step<MB, kNvfp4>(s, [&](int w, uint4(&xw)[MB]) {
#pragma unroll
      for (int mb = 0; mb < MB; ++mb) {
        xw[mb] = make_uint4(0, 0, 0, 0);
        load_x_if(xw[mb], x_row(a, m_base, mb, row_end, g, q) + full * 128 + 8 * w, in);
      }
    }, acc);
  }
}

// Output value c of lane l of x tile mb: W row n_base + l / 4 (+ 8 for c >=
// 2), x row m_base + 8 mb + 2 (l % 4) + c % 2; scaled by 1 / G, plus bias.
__device__ __forceinline__ void store_output(const DecodeArgs& a, int m, int n, int row_end, float v,
                                             float inv_global) {
  if (m < row_end && n < a.N) {
    v *= inv_global;
    if (a.bias) v += __bfloat162float(a.bias[n]);
    a.y[static_cast<int64_t>(m) * a.N + n] = __float2bfloat16_rn(v);
  }
}

// kWarps warps per block (kBlocks blocks per SM) share one 16-row tile of
// W, taking its K steps round robin (kRing of a warp's in flight), and sum
// through shared memory.
template <int MB, bool kNvfp4, int kWarps, int kRing, bool kWholeStepX, int kBlocks>
__global__ void __launch_bounds__(kWarps * 32, kBlocks) fp4_decode_kernel(DecodeArgs a) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  const int e = blockIdx.y;
  const int row_begin = a.offsets ? a.offsets[e] : 0;
  const int row_end = a.offsets ? a.offsets[e + 1] : a.M;
  if (row_begin >= row_end) return;
  const int n_base = blockIdx.x * 16;
  const TilePointers tile = tile_pointers<kNvfp4>(a, e, n_base, g, q);
  const int full = a.K / 128, tail = a.K % 128;
  const float inv_global = kNvfp4 ? 1.0f / a.global_scale[e] : 1.0f;
  __shared__ float partial[kWarps][MB * 4][32];

  for (int m_base = row_begin; m_base < row_end; m_base += 8 * MB) {
    float acc[MB][4] = {};
    accumulate_tile<MB, kNvfp4, kWarps, kRing, kWholeStepX>(a, tile, m_base, row_end, warp, full, tail, g, q, acc);
    // Sum the warps' partial sums.
#pragma unroll
    for (int mb = 0; mb < MB; ++mb)
#pragma unroll
      for (int c = 0; c < 4; ++c) partial[warp][mb * 4 + c][lane] = acc[mb][c];
    __syncthreads();
    for (int idx = threadIdx.x; idx < MB * 4 * 32; idx += kWarps * 32) {
      const int i = idx / 32, l = idx % 32, mb = i / 4, c = i % 4;
      float v = 0.f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) v += partial[w][i][l];
      store_output(a, m_base + 8 * mb + 2 * (l % 4) + (c & 1), n_base + l / 4 + (c >= 2 ? 8 : 0), row_end, v,
                   inv_global);
    }
    __syncthreads();
  }
}

// The stream variant: persistent warps, each owning whole 16-row tiles of
// W (all of K, so no sum across warps and no barrier) and walking the
// (expert, tile) list with a grid-wide stride, experts without rows
// skipped. A warp streams its tile's codes with kRing K steps in flight and
// never waits for other warps, so an SM's loads stay in flight across tile
// boundaries (the block variants drain between blocks).
template <int MB, bool kNvfp4, int kRing>
__global__ void __launch_bounds__(256, 2) fp4_decode_stream_kernel(DecodeArgs a, int experts) {
  const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  const int tiles_n = (a.N + 15) / 16;
  const int64_t tiles = static_cast<int64_t>(experts) * tiles_n;
  const int warps = gridDim.x * (blockDim.x / 32);
  const int full = a.K / 128, tail = a.K % 128;
  for (int64_t t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; t < tiles; t += warps) {
    const int e = static_cast<int>(t / tiles_n), n_base = static_cast<int>(t % tiles_n) * 16;
    const int row_begin = a.offsets ? a.offsets[e] : 0;
    const int row_end = a.offsets ? a.offsets[e + 1] : a.M;
    if (row_begin >= row_end) continue;
    const TilePointers tile = tile_pointers<kNvfp4>(a, e, n_base, g, q);
    const float inv_global = kNvfp4 ? 1.0f / a.global_scale[e] : 1.0f;
    for (int m_base = row_begin; m_base < row_end; m_base += 8 * MB) {
      float acc[MB][4] = {};
      accumulate_tile<MB, kNvfp4, 1, kRing, true>(a, tile, m_base, row_end, 0, full, tail, g, q, acc);
#pragma unroll
      for (int mb = 0; mb < MB; ++mb)
#pragma unroll
        for (int c = 0; c < 4; ++c)
          store_output(a, m_base + 8 * mb + 2 * q + (c & 1), n_base + g + (c >= 2 ? 8 : 0), row_end, acc[mb][c],
                       inv_global);
    }
  }
}

// Blocks of the stream variant: 2 per SM (its launch bounds), fewer when
// there are fewer tiles than warps.
int stream_blocks(int64_t tiles) {
  static int sms[64] = {};
  int device = 0;
  cudaGetDevice(&device);
  int& n = sms[device < 64 ? device : 63];
  if (n == 0 && cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) n = 132;
  const int64_t needed = (tiles + 7) / 8;
  return static_cast<int>(needed < 2 * n ? (needed > 0 ? needed : 1) : 2 * n);
}

// The bf16 twin of the stream variant, for bf16 experts at decode sizes:
// the same persistent warps and (expert, tile) walk, W read as bf16 (no
// decode, no scales). A step is 64 values of k: a lane loads 16 values of
// rows g and g + 8 (two 16-byte loads each) and of each x row, and feeds
// four MMAs; in MMA h of 16-byte load i, k-slots {2q, 2q + 1} hold k =
// 16q + 8i + 4h + {0, 1} and {2q + 8, 2q + 9} hold + {2, 3} (W and x agree).
template <int MB, int kRing>
__global__ void __launch_bounds__(256, 2) bf16_grouped_decode_kernel(const __nv_bfloat16* __restrict__ x,
                                                                     const int32_t* __restrict__ offsets, int experts,
                                                                     const __nv_bfloat16* __restrict__ w, int N, int K,
                                                                     __nv_bfloat16* __restrict__ y) {
  const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  const int tiles_n = (N + 15) / 16;
  const int64_t tiles = static_cast<int64_t>(experts) * tiles_n;
  const int warps = gridDim.x * (blockDim.x / 32);
  const int steps = K / 64;
  for (int64_t t = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; t < tiles; t += warps) {
    const int e = static_cast<int>(t / tiles_n), n_base = static_cast<int>(t % tiles_n) * 16;
    const int row_begin = offsets[e], row_end = offsets[e + 1];
    if (row_begin >= row_end) continue;
    const __nv_bfloat16* wr[2];
#pragma unroll
    for (int r = 0; r < 2; ++r)
      wr[r] = w + (static_cast<int64_t>(e) * N + min(n_base + g + 8 * r, N - 1)) * K + 16 * q;
    for (int m_base = row_begin; m_base < row_end; m_base += 8 * MB) {
      const __nv_bfloat16* xp[MB];
#pragma unroll
      for (int mb = 0; mb < MB; ++mb)
        xp[mb] = x + static_cast<int64_t>(min(m_base + 8 * mb + g, row_end - 1)) * K + 16 * q;
      const __nv_bfloat16* wp[2] = {wr[0], wr[1]};
      float acc[MB][4] = {};
      uint4 ring[kRing][2][2];  // [step][row g, g + 8][16-byte load]
#pragma unroll
      for (int d = 0; d < kRing; ++d)
#pragma unroll
        for (int r = 0; r < 2; ++r)
#pragma unroll
          for (int i = 0; i < 2; ++i) {
            ring[d][r][i] = make_uint4(0, 0, 0, 0);
            load_codes_if(ring[d][r][i], wp[r] + d * 64 + 8 * i, d < steps);
          }
      for (int base = 0; base < steps; base += kRing) {
#pragma unroll
        for (int d = 0; d < kRing; ++d) {
          const int step = base + d;
          if (step >= steps) break;
          uint4 xw[MB][2];
#pragma unroll
          for (int mb = 0; mb < MB; ++mb)
#pragma unroll
            for (int i = 0; i < 2; ++i) xw[mb][i] = __ldg(reinterpret_cast<const uint4*>(xp[mb] + d * 64 + 8 * i));
#pragma unroll
          for (int i = 0; i < 2; ++i) {
            const uint4 &lo = ring[d][0][i], &hi = ring[d][1][i];
            const uint32_t a0[4] = {lo.x, hi.x, lo.y, hi.y}, a1[4] = {lo.z, hi.z, lo.w, hi.w};
#pragma unroll
            for (int mb = 0; mb < MB; ++mb) {
              mma_bf16_16816(acc[mb], a0, xw[mb][i].x, xw[mb][i].y);
              mma_bf16_16816(acc[mb], a1, xw[mb][i].z, xw[mb][i].w);
            }
          }
          const bool next = step + kRing < steps;
#pragma unroll
          for (int r = 0; r < 2; ++r)
#pragma unroll
            for (int i = 0; i < 2; ++i) load_codes_if(ring[d][r][i], wp[r] + (d + kRing) * 64 + 8 * i, next);
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) wp[r] += kRing * 64;
#pragma unroll
        for (int mb = 0; mb < MB; ++mb) xp[mb] += kRing * 64;
      }
#pragma unroll
      for (int mb = 0; mb < MB; ++mb)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int m = m_base + 8 * mb + 2 * q + (c & 1), n = n_base + g + (c >= 2 ? 8 : 0);
          if (m < row_end && n < N) y[static_cast<int64_t>(m) * N + n] = __float2bfloat16_rn(acc[mb][c]);
        }
    }
  }
}

template <int MB>
cudaError_t launch_stream(const DecodeArgs& a, int64_t experts, cudaStream_t stream) {
  const int blocks = stream_blocks(experts * ((a.N + 15) / 16));
  if (a.global_scale)
    fp4_decode_stream_kernel<MB, true, 4><<<blocks, 256, 0, stream>>>(a, static_cast<int>(experts));
  else
    fp4_decode_stream_kernel<MB, false, 4><<<blocks, 256, 0, stream>>>(a, static_cast<int>(experts));
  return cudaGetLastError();
}

template <int MB, int kWarps, int kRing, bool kWholeStepX, int kBlocks = 2>
cudaError_t launch(const DecodeArgs& a, int64_t experts, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.N + 15) / 16), static_cast<unsigned>(experts));
  if (a.global_scale)
    fp4_decode_kernel<MB, true, kWarps, kRing, kWholeStepX, kBlocks><<<grid, kWarps * 32, 0, stream>>>(a);
  else
    fp4_decode_kernel<MB, false, kWarps, kRing, kWholeStepX, kBlocks><<<grid, kWarps * 32, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

bool bf16_grouped_decode_fits(int64_t rows_per_group, int64_t K, int64_t N, const void* x, const void* w) {
  constexpr int64_t int_max = 0x7fffffff;
  return rows_per_group <= 16 && K % 64 == 0 && K < int_max && N < int_max &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0;
}

cudaError_t bf16_grouped_decode_matmul(const __nv_bfloat16* x, const int32_t* offsets, int64_t experts,
                                       int64_t rows_per_group, const __nv_bfloat16* w, int64_t N, int64_t K,
                                       __nv_bfloat16* y, cudaStream_t stream) {
  if (!bf16_grouped_decode_fits(rows_per_group, K, N, x, w) || experts > 0x7fffffff) return cudaErrorInvalidValue;
  if (experts <= 0 || N <= 0) return cudaSuccess;
  const int blocks = stream_blocks(experts * ((N + 15) / 16));
  const int e = static_cast<int>(experts), n = static_cast<int>(N), k = static_cast<int>(K);
  if (rows_per_group <= 8)
    bf16_grouped_decode_kernel<1, 4><<<blocks, 256, 0, stream>>>(x, offsets, e, w, n, k, y);
  else
    bf16_grouped_decode_kernel<2, 4><<<blocks, 256, 0, stream>>>(x, offsets, e, w, n, k, y);
  return cudaGetLastError();
}

bool fp4_decode_fits(int64_t rows_per_group, int64_t K, int64_t N, const void* x, const uint8_t* packed,
                     const uint8_t* scales, bool nvfp4) {
  constexpr int64_t int_max = 0x7fffffff;
  return rows_per_group <= 32 && K % 32 == 0 && K * 2 < int_max && N < int_max &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(packed) % 16 == 0 &&
         (!nvfp4 || reinterpret_cast<uintptr_t>(scales) % 2 == 0);
}

cudaError_t fp4_decode_matmul(const DecodeArgs& a, int64_t rows_per_group, int64_t experts, DecodeVariant variant,
                              cudaStream_t stream) {
  // stream (at most 16 rows per pass): persistent warps, a whole tile each.
  if (variant == DecodeVariant::stream && rows_per_group <= 16)
    return rows_per_group <= 8 ? launch_stream<1>(a, experts, stream) : launch_stream<2>(a, experts, stream);
  // compact (at most 16 rows): blocks of 4 warps, 4 per SM, so that an SM
  // holds 4 blocks' loads (a 16-row tile's codes each) in flight instead of 2.
  if (variant == DecodeVariant::compact && rows_per_group <= 16)
    return rows_per_group <= 8 ? launch<1, 4, 4, true, 4>(a, experts, stream)
                               : launch<2, 4, 2, true, 4>(a, experts, stream);
  // wide (at most 8 rows): 12 warps of at most 85 registers, 24 warps per
  // SM instead of 16, 2 steps in flight per warp instead of 4.
  if (rows_per_group <= 8)
    return variant == DecodeVariant::wide ? launch<1, 12, 2, false>(a, experts, stream)
                                          : launch<1, 8, 4, true>(a, experts, stream);
  if (rows_per_group <= 16) return launch<2, 8, 2, true>(a, experts, stream);
  // 17-32 rows: four 8-row x tiles per pass, so each decoded W fragment
  // feeds four MMAs (two passes of 16 decoded every W value twice); x is
  // loaded per codes word (registers).
  return launch<4, 8, 2, false>(a, experts, stream);
}

}  // namespace qerl::kernels::cuda::detail
