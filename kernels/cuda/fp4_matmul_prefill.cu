// W4A16 on the tensor cores for prefill shapes (see fp4_cuda.hpp,
// fp4_prefill_matmul_bf16): y = x · dequant(W)ᵀ for many rows of x, with
// W's codes decoded in registers; no dense copy of W exists anywhere.
//
// Tiling: a block of 8 warps owns a 128 x 128 tile of y (128 rows of x,
// 128 rows of W) and walks K in 64-wide stages. Each stage's x tile
// (128 x 64 bf16) and codes tile (128 x 32 bytes) are copied global ->
// shared by cp.async, kStages - 1 stages ahead of the one being multiplied
// (zero-filled past the ends of M, N and K), so the tensor cores never wait
// on DRAM once the pipeline is full. The block scales (1 byte per 16 or 32
// values, rows not 4-byte aligned in general) are read by each thread from
// global memory one stage ahead into a register.
//
// Warps sit 2 (rows of x) x 4 (rows of W); a warp's 64 x 32 tile is 4 x 4
// mma.sync m16n8k16 tiles (fp32 accumulators). K order inside a stage:
// lane (g = lane / 4, q = lane % 4) owns values [16q, 16q + 16) of the
// stage for its x rows and its W rows, and in sub-step s its fragment slots
// {2q, 2q + 1} hold k = 16q + 4s + {0, 1}, slots {2q + 8, 2q + 9} hold
// k = 16q + 4s + {2, 3}. Any order works when x and W use the same one;
// this one gives a lane its W values as 8 contiguous bytes of codes (one
// NVFP4 group: one scale) and its x values as 32 contiguous bytes, both
// read from shared memory without bank conflicts (x rows padded to 144
// bytes).
//
// Values: code x block scale is exact in bf16 (as in fp4_matmul.cu), so the
// tensor cores see dequant(W) * G exactly and NVFP4's 1 / G scales the fp32
// sums.
//
// Groups of rows (MoE experts, rows sorted by expert, offsets on the
// device): blockIdx.y enumerates the 128-row tiles of every expert in turn;
// the grid has ceil(rows / 128) + experts of them (an upper bound read from
// nothing but the host's row count), and a block past the last tile exits.
#include "kernels/cuda/fp4_cuda.hpp"
#include "kernels/cuda/fp4_prefill.cuh"

#include <algorithm>
#include <atomic>

namespace qerl::kernels::cuda {
namespace {

using namespace device;
using namespace prefill;

template <bool kNvfp4>
__global__ void __launch_bounds__(kThreads, 1) fp4_prefill_kernel(PrefillArgs a) {
  constexpr int group = kNvfp4 ? 16 : 32;
  Tile t;
  if (!find_block_tile(a, group, t)) return;
  extern __shared__ __align__(128) uint8_t smem[];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, q = lane % 4;
  const int warp_m = warp / 4, warp_n = warp % 4;
  const int64_t K = a.K, N = a.N, n_base = t.n_base, row_begin = t.row_begin, row_end = t.row_end;
  const int64_t stage_begin = t.stage_begin, stage_end = t.stage_end;

  // x rows padded to kXPitch: chunk (row tid / 8 + 32 i, K chunk tid % 8).
  const StageCopies copies(a, t, tid / 8, tid % 8, smem_address(smem), (tid / 8 * kXPitch + 8 * (tid % 8)) * 2,
                           32 * kXPitch * 2, kBM * kXPitch * 2, kStageBytes);
  // The lane's 4 scale bytes of a stage (one per 8-row W tile), packed in a word.
  const int64_t scale_stride = K / group;
  const uint8_t* scale_src = t.scales + (n_base + warp_n * 32 + g) * scale_stride + q * 16 / group;
  const int64_t rows_left = N - (n_base + warp_n * 32 + g);
  auto load_scales = [&](int64_t stage) {
    uint32_t word = 0;
    const int64_t k = stage * kBK + 16 * q;
    if (stage < stage_end && k < K) {
      const uint8_t* p = scale_src + stage * (kBK / group);
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
        if (nt * 8 < rows_left) word |= static_cast<uint32_t>(__ldg(p + nt * 8 * scale_stride)) << (8 * nt);
    }
    return word;
  };

  float acc[4][4][4];
#pragma unroll
  for (int mt = 0; mt < 4; ++mt)
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[mt][nt][c] = 0.f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (stage_begin + s < stage_end) copies.issue(stage_begin + s);
    copy_commit();
  }
  uint32_t scale_word = load_scales(stage_begin);
  // Rows of this warp's x tile that hold rows of the group (a warp wholly
  // past row_end skips its multiplies, not its share of the copies).
  const bool warp_active = row_begin + warp_m * 64 < row_end;

  for (int64_t stage = stage_begin; stage < stage_end; ++stage) {
    copy_wait<kStages - 2>();
    __syncthreads();  // stage's tiles visible to all; the slot refilled below was consumed by all
    if (stage + kStages - 1 < stage_end) copies.issue(stage + kStages - 1);
    copy_commit();
    const uint32_t next_scales = load_scales(stage + 1);
    if (warp_active) {
      const uint8_t* base = smem + (stage % kStages) * kStageBytes;
      const __nv_bfloat16* xs = reinterpret_cast<const __nv_bfloat16*>(base) + (warp_m * 64 + g) * kXPitch + 16 * q;
      const uint8_t* ws = base + kBM * kXPitch * 2 + (warp_n * 32 + g) * kCodePitch + 8 * q;
      uint2 code[4];
      __nv_bfloat162 scale[4];
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        code[nt] = *reinterpret_cast<const uint2*>(ws + nt * 8 * kCodePitch);
        scale[nt] = scale_pair((scale_word >> (8 * nt)) & 0xFFu, kNvfp4);
      }
      // Two halves: codes word h holds the lane's values 8h .. 8h + 7, the
      // second 16-byte x load of a row the same values.
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        uint32_t b[4][4];
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
          e2m1x8_to_bf16x8(h == 0 ? code[nt].x : code[nt].y, b[nt]);
#pragma unroll
          for (int i = 0; i < 4; ++i) b[nt][i] = bf16x2_mul(b[nt][i], scale[nt]);
        }
#pragma unroll
        for (int mt = 0; mt < 4; ++mt) {
          const uint4 x0 = *reinterpret_cast<const uint4*>(xs + mt * 16 * kXPitch + 8 * h);
          const uint4 x1 = *reinterpret_cast<const uint4*>(xs + (mt * 16 + 8) * kXPitch + 8 * h);
          const uint32_t a0[4] = {x0.x, x1.x, x0.y, x1.y}, a1[4] = {x0.z, x1.z, x0.w, x1.w};
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) {
            mma_bf16_16816(acc[mt][nt], a0, b[nt][0], b[nt][1]);
            mma_bf16_16816(acc[mt][nt], a1, b[nt][2], b[nt][3]);
          }
        }
      }
    }
    scale_word = next_scales;
  }
  copy_wait<0>();

  if (!warp_active) return;
  // Split-K: raw sums into the workspace (finish_split_k scales and adds
  // the bias); else y, scaled by 1 / G, with the bias.
  const float inv_global = kNvfp4 ? 1.0f / a.global_scale[t.e] : 1.0f;
#pragma unroll
  for (int nt = 0; nt < 4; ++nt) {
    const int64_t n = n_base + warp_n * 32 + nt * 8 + 2 * q;
    if (n >= N) continue;
    const bool pair = n + 1 < N, add_bias = a.bias && a.partial == nullptr;
    const float bias0 = add_bias ? __bfloat162float(a.bias[n]) : 0.f;
    const float bias1 = add_bias && pair ? __bfloat162float(a.bias[n + 1]) : 0.f;
#pragma unroll
    for (int mt = 0; mt < 4; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = row_begin + warp_m * 64 + mt * 16 + g + 8 * h;
        if (row >= row_end) continue;
        if (a.partial != nullptr) {
          atomicAdd(a.partial + row * N + n, acc[mt][nt][2 * h]);
          if (pair) atomicAdd(a.partial + row * N + n + 1, acc[mt][nt][2 * h + 1]);
          continue;
        }
        const float v0 = acc[mt][nt][2 * h] * inv_global + bias0;
        const float v1 = acc[mt][nt][2 * h + 1] * inv_global + bias1;
        __nv_bfloat16* out = a.y + row * N + n;
        if (pair && N % 2 == 0) {
          *reinterpret_cast<__nv_bfloat162*>(out) = __floats2bfloat162_rn(v0, v1);
        } else {
          out[0] = __float2bfloat16_rn(v0);
          if (pair) out[1] = __float2bfloat16_rn(v1);
        }
      }
  }
}

// y = partial * (1 / G) + bias after a split-K launch.
__global__ void finish_split_k(const float* __restrict__ partial, int64_t rows, int64_t N,
                               const float* __restrict__ global_scale, const __nv_bfloat16* __restrict__ bias,
                               __nv_bfloat16* __restrict__ y) {
  const float inv_global = global_scale ? 1.0f / global_scale[0] : 1.0f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * N;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16_rn(partial[i] * inv_global + (bias ? __bfloat162float(bias[i % N]) : 0.f));
}

PrefillKernel prefill_kernel = PrefillKernel::automatic;

template <bool kNvfp4>
cudaError_t launch(const PrefillArgs& a, int64_t tiles, cudaStream_t stream) {
  static std::atomic<uint64_t> mma_set{0};
  const dim3 grid(static_cast<unsigned>((a.N + kBN - 1) / kBN), static_cast<unsigned>(tiles),
                  static_cast<unsigned>(a.splits));
  if (prefill_kernel != PrefillKernel::mma_sync) {
    if (const cudaError_t bad = launch_wgmma<kNvfp4>(a, grid, stream); bad != cudaSuccess) return bad;
  } else {
    const auto kernel = fp4_prefill_kernel<kNvfp4>;
    if (const cudaError_t bad = allow_shared_memory(kernel, kSmemBytes, mma_set); bad != cudaSuccess) return bad;
    kernel<<<grid, kThreads, kSmemBytes, stream>>>(a);
  }
  if (const cudaError_t bad = cudaGetLastError(); bad != cudaSuccess || a.partial == nullptr) return bad;
  const int64_t blocks = std::min<int64_t>((a.M * a.N + 255) / 256, 1 << 16);
  finish_split_k<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(a.partial, a.M, a.N, a.global_scale, a.bias,
                                                                    a.y);
  return cudaGetLastError();
}

}  // namespace

void fp4_select_prefill_kernel(PrefillKernel kernel) { prefill_kernel = kernel; }
PrefillKernel fp4_prefill_kernel() { return prefill_kernel; }

int fp4_prefill_splits(int64_t rows, int64_t K, int64_t N) {
  // Split K while the 128 x 128 tiles would fill less than one wave (one
  // block per SM), keeping at least 4 stages of 64 per split.
  static const int sms = [] {
    int device = 0, count = 132;
    if (cudaGetDevice(&device) == cudaSuccess)
      cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device);
    return count;
  }();
  const int64_t tiles = ((rows + kBM - 1) / kBM) * ((N + kBN - 1) / kBN);
  const int64_t stages = (K + kBK - 1) / kBK;
  if (tiles >= sms) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({(sms + tiles - 1) / tiles, stages / 4, 16})));
}

cudaError_t fp4_prefill_matmul_bf16(const __nv_bfloat16* x, const int32_t* offsets, int64_t experts, int64_t rows,
                                    int64_t K, const uint8_t* packed, const uint8_t* scales,
                                    const float* global_scale, int64_t N, const __nv_bfloat16* bias,
                                    __nv_bfloat16* y, cudaStream_t stream, float* split_k_workspace, int splits) {
  const bool nvfp4 = global_scale != nullptr;
  if (K % (nvfp4 ? 16 : 32) != 0 || experts < 1 || splits < 1) return cudaErrorInvalidValue;
  if (splits > 1 && (offsets != nullptr || split_k_workspace == nullptr)) return cudaErrorInvalidValue;
  // 8-byte copies of codes (row stride K / 2, a multiple of 8), 16-byte copies of x (row stride 2K).
  if (reinterpret_cast<uintptr_t>(packed) % 8 != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0)
    return cudaErrorMisalignedAddress;
  if (rows <= 0 || N <= 0) return cudaSuccess;
  const int64_t tiles = (rows + kBM - 1) / kBM + (offsets ? experts : 0);
  if (tiles > 65535) return cudaErrorInvalidValue;
  const PrefillArgs a{{x, K, N, packed, scales, global_scale, bias, offsets, rows, y},
                      experts,
                      splits > 1 ? split_k_workspace : nullptr,
                      splits};
  return nvfp4 ? launch<true>(a, tiles, stream) : launch<false>(a, tiles, stream);
}

}  // namespace qerl::kernels::cuda
