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
#include "kernels/cuda/fp4_device.cuh"

#include <algorithm>
#include <atomic>

namespace qerl::kernels::cuda {
namespace {

using namespace device;

constexpr int kBM = 128, kBN = 128, kBK = 64, kStages = 4, kThreads = 256;
constexpr int kXPitch = kBK + 8;        // bf16 per x row in shared memory (144 bytes: no bank conflicts)
constexpr int kCodePitch = kBK / 2;     // bytes per W row of codes per stage
constexpr int kStageBytes = kBM * kXPitch * 2 + kBN * kCodePitch;
constexpr int kSmemBytes = kStages * kStageBytes;

struct PrefillArgs {
  const __nv_bfloat16* x;     // [rows, K]
  int64_t K, N;
  const uint8_t* packed;      // [E, N, K / 2]
  const uint8_t* scales;      // [E, N, K / group]
  const float* global_scale;  // [E] (NVFP4) or null (MXFP4)
  const __nv_bfloat16* bias;  // [N] or null
  const int32_t* offsets;     // [E + 1] or null: one group of rows [0, M)
  int64_t experts, M;
  __nv_bfloat16* y;           // [rows, N]
  // Split-K (one group of rows only): blockIdx.z sums stages
  // [z * stages / splits, (z + 1) * stages / splits) into partial
  // ([rows, N] fp32, zeroed) with atomics; finish_split_k writes y.
  float* partial;
  int splits;
};

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// cp.async of 16 (x) or 8 (codes) bytes, zero-filled when !valid (the
// source is then not read; `src` must still be a mapped address).
template <int kBytes>
__device__ __forceinline__ void copy_async(uint32_t dst, const void* src, bool valid) {
  const int src_bytes = valid ? kBytes : 0;
  if constexpr (kBytes == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void copy_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void copy_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

__device__ __forceinline__ __nv_bfloat162 scale_pair(uint32_t raw, bool nvfp4) {
  // E4M3 is exact in bf16 (4 significant bits); E8M0 is bf16's exponent field (code 0: 2^-127).
  const __nv_bfloat16 v =
      nvfp4 ? __float2bfloat16_rn(e4m3_value(static_cast<uint8_t>(raw)))
            : __ushort_as_bfloat16(static_cast<unsigned short>(raw == 0 ? 0x0040u : raw << 7));
  return __halves2bfloat162(v, v);
}

// Which 128-row tile of which group of rows this block owns: false when
// the block is past the last tile.
__device__ __forceinline__ bool find_tile(const PrefillArgs& a, int64_t& e, int64_t& row_begin, int64_t& row_end) {
  int64_t tile = blockIdx.y;
  if (a.offsets == nullptr) {
    e = 0;
    row_begin = tile * kBM;
    row_end = a.M;
    return row_begin < row_end;
  }
  for (e = 0; e < a.experts; ++e) {
    const int64_t begin = a.offsets[e], end = a.offsets[e + 1];
    const int64_t tiles = end > begin ? (end - begin + kBM - 1) / kBM : 0;
    if (tile < tiles) {
      row_begin = begin + tile * kBM;
      row_end = end;
      return true;
    }
    tile -= tiles;
  }
  return false;
}

// One block's tile: its group of rows (expert e, rows [row_begin,
// row_end)), its 128 rows of W from n_base, and its range of 64-wide K
// stages (all of K, or a split's share).
struct Tile {
  int64_t e, row_begin, row_end, n_base, stage_begin, stage_end;
  const uint8_t* codes;   // expert e's codes [N, K / 2]
  const uint8_t* scales;  // and block scales [N, K / group]
};

__device__ __forceinline__ bool find_block_tile(const PrefillArgs& a, int group, Tile& t) {
  if (!find_tile(a, t.e, t.row_begin, t.row_end)) return false;
  t.n_base = static_cast<int64_t>(blockIdx.x) * kBN;
  const int64_t stages = (a.K + kBK - 1) / kBK;
  t.stage_begin = stages * blockIdx.z / a.splits;
  t.stage_end = stages * (blockIdx.z + 1) / a.splits;
  t.codes = a.packed + t.e * a.N * (a.K / 2);
  t.scales = a.scales + t.e * a.N * (a.K / group);
  return true;
}

// A thread's cp.async copies of one stage: 4 chunks of x (16 bytes, rows
// x_row + 32 i, K chunk x_chunk) and 2 of codes (8 bytes, W rows
// tid / 4 + 64 i, chunk tid % 4), zero-filled past M, N and K. Where x goes
// in shared memory is the kernel's layout: x_dst for chunk 0, x_step
// between chunks; codes follow x at code_offset, rows kCodePitch apart.
struct StageCopies {
  static constexpr int kX = kBM * kBK / 8 / kThreads, kCodes = kBN * kCodePitch / 8 / kThreads;
  const __nv_bfloat16* x_src;
  const __nv_bfloat16* x_any;  // a mapped address for zero-filled copies
  const uint8_t* code_src;
  const uint8_t* code_any;
  int64_t K;
  uint32_t x_dst, x_step, code_dst, stage_bytes, x_rows, code_rows;
  int x_chunk, code_chunk;

  __device__ StageCopies(const PrefillArgs& a, const Tile& t, int x_row, int chunk, uint32_t smem, uint32_t x_offset,
                         uint32_t step, uint32_t code_offset, uint32_t bytes_per_stage)
      : x_src(a.x + (t.row_begin + x_row) * a.K + 8 * chunk), x_any(a.x), code_any(t.codes), K(a.K),
        x_dst(smem + x_offset), x_step(step), stage_bytes(bytes_per_stage), x_rows(0), code_rows(0),
        x_chunk(chunk), code_chunk(threadIdx.x % 4) {
    const int code_row = threadIdx.x / 4;
    code_src = t.codes + (t.n_base + code_row) * (a.K / 2) + 8 * code_chunk;
    code_dst = smem + code_offset + code_row * kCodePitch + 8 * code_chunk;
#pragma unroll
    for (int i = 0; i < kX; ++i) x_rows |= (t.row_begin + x_row + 32 * i < t.row_end ? 1u : 0u) << i;
#pragma unroll
    for (int i = 0; i < kCodes; ++i) code_rows |= (t.n_base + code_row + 64 * i < a.N ? 1u : 0u) << i;
  }

  __device__ void issue(int64_t stage) const {
    const uint32_t slot = static_cast<uint32_t>(stage % kStages) * stage_bytes;
    const int64_t k0 = stage * kBK;
    const bool x_k = k0 + 8 * x_chunk < K, code_k = k0 + 16 * code_chunk < K;
#pragma unroll
    for (int i = 0; i < kX; ++i) {
      const bool valid = x_k && (x_rows >> i & 1u);
      copy_async<16>(x_dst + slot + i * x_step, valid ? x_src + i * 32 * K + k0 : x_any, valid);
    }
#pragma unroll
    for (int i = 0; i < kCodes; ++i) {
      const bool valid = code_k && (code_rows >> i & 1u);
      copy_async<8>(code_dst + slot + i * 64 * kCodePitch, valid ? code_src + i * 64 * (K / 2) + k0 / 2 : code_any,
                    valid);
    }
  }
};

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

// ---- v2: wgmma (sm_90a) ----
//
// The same tiles with Hopper's warpgroup MMA: the two warpgroups of a block
// own 64 W rows each, as wgmma's A operand in registers (decoded from the
// codes in shared memory), times the stage's 128 x rows as its B operand
// read by the tensor cores from shared memory (m64n128k16, fp32
// accumulators: 64 per thread). K order is wgmma's own (a lane holds
// k = 2q, 2q + 1 and 2q + 8, 2q + 9 of each 16), so a lane gathers byte q of
// each 4-byte word of its W row's 32 code bytes (byte permutes) before
// decoding. x sits in shared memory in the no-swizzle K-major layout of 8
// rows x 16 bytes "core matrices": [8-row group][8-value K chunk][row][8
// values], 128 bytes between K chunks (the descriptor's leading offset),
// 1024 between row groups (its stride offset). The decode of stage i + 1
// runs while the tensor cores multiply stage i (wgmma is asynchronous; A
// registers alternate between two buffers).
constexpr int kWgXBytes = kBM * kBK * 2;                      // x tile of one stage
constexpr int kWgStageBytes = kWgXBytes + kBN * kCodePitch;  // + its codes
constexpr int kWgSmemBytes = kStages * kWgStageBytes;

// wgmma exists on sm_90a only: its helpers and the kernel's body are
// compiled for that target (and parsed by the host pass), not for sm_90.
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define QERL_WGMMA 1
#endif

#ifdef QERL_WGMMA

__device__ __forceinline__ uint64_t smem_descriptor(uint32_t address) {
  constexpr uint64_t leading = 128 >> 4, stride = 1024 >> 4;  // in 16-byte units; swizzle bits 62-63 = 0 (none)
  return static_cast<uint64_t>((address & 0x3FFFF) >> 4) | (leading << 16) | (stride << 32);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// cp.async's writes (generic proxy) made visible to wgmma's reads (async proxy).
__device__ __forceinline__ void fence_async_shared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Pins registers at this point: no use of them moves across it, and their
// physical registers are not reused before it (an in-flight wgmma reads them).
template <int kCount>
__device__ __forceinline__ void pin(float (&v)[kCount]) {
#pragma unroll
  for (int i = 0; i < kCount; ++i) asm volatile("" : "+f"(v[i])::"memory");
}
__device__ __forceinline__ void pin(uint32_t (&v)[4][4]) {
#pragma unroll
  for (int s = 0; s < 4; ++s)
#pragma unroll
    for (int i = 0; i < 4; ++i) asm volatile("" : "+r"(v[s][i])::"memory");
}

// d (64 fp32 per thread: the warp's 16 W rows x 128 x rows) += A (this
// thread's 4 bf16x2 registers of the warp's 16 x 16 slice) * B (128 x
// rows x 16 k in shared memory, described by desc).
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], const uint32_t (&a)[4], uint64_t desc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

#endif  // QERL_WGMMA

template <bool kNvfp4>
__global__ void __launch_bounds__(kThreads, 1) fp4_prefill_wgmma_kernel(PrefillArgs a) {
#ifdef QERL_WGMMA
  constexpr int group = kNvfp4 ? 16 : 32;
  Tile t;
  if (!find_block_tile(a, group, t)) return;
  extern __shared__ __align__(128) uint8_t smem[];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, q = lane % 4;
  const int64_t K = a.K, N = a.N, n_base = t.n_base, row_begin = t.row_begin, row_end = t.row_end;
  const int64_t stage_begin = t.stage_begin, stage_end = t.stage_end;
  const uint32_t smem_base = smem_address(smem);

  // x in core matrices: chunk (row 8 (tid / 64 + 4 i) + tid % 8, K chunk
  // (tid / 8) % 8); a warp reads 8 rows x 64 contiguous bytes, and each 8
  // lanes write one 128-byte core matrix (no bank conflicts).
  const int x_row = 8 * (tid / 64) + tid % 8, x_chunk = (tid / 8) % 8;
  const StageCopies copies(a, t, x_row, x_chunk, smem_base, (x_row / 8) * 1024 + x_chunk * 128 + (x_row % 8) * 16,
                           4 * 1024, kWgXBytes, kWgStageBytes);

  // The lane's W rows: g and g + 8 of its warp's 16 (warp w of the block:
  // rows 16 w .. 16 w + 15 of the 128). Lane q loads the block-scale byte
  // of K values [16 q, 16 q + 16) of a stage for both rows (byte 0: row g,
  // byte 1: row g + 8); the 16-value step s takes lane s's (a shuffle).
  const int64_t w_row = n_base + warp * 16 + g;
  const int64_t scale_stride = K / group;
  const uint8_t* scale_src = t.scales + w_row * scale_stride + q * 16 / group;
  auto load_scales = [&](int64_t stage) {
    uint32_t word = 0;
    if (stage < stage_end && stage * kBK + 16 * q < K) {
      const uint8_t* p = scale_src + stage * (kBK / group);
      if (w_row < N) word = __ldg(p);
      if (w_row + 8 < N) word |= static_cast<uint32_t>(__ldg(p + 8 * scale_stride)) << 8;
    }
    return word;
  };
  const uint32_t gather = static_cast<uint32_t>(q) | static_cast<uint32_t>(4 + q) << 4;  // bytes q of two words
  // A fragments of one stage: frag[s] = {row g k 2q.., row g + 8 k 2q.., row g k 2q + 8.., row g + 8 k 2q + 8..}.
  auto decode = [&](int64_t stage, uint32_t scale_word, uint32_t(&frag)[4][4]) {
    uint32_t step_scales[4];
#pragma unroll
    for (int s = 0; s < 4; ++s) step_scales[s] = __shfl_sync(0xffffffffu, scale_word, (lane & ~3) | s);
    const uint8_t* ws = smem + (stage % kStages) * kWgStageBytes + kWgXBytes + (warp * 16 + g) * kCodePitch;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const uint4 lo = *reinterpret_cast<const uint4*>(ws + r * 8 * kCodePitch);
      const uint4 hi = *reinterpret_cast<const uint4*>(ws + r * 8 * kCodePitch + 16);
      uint32_t d[2][4];
      e2m1x8_to_bf16x8(prmt(prmt(lo.x, lo.y, gather), prmt(lo.z, lo.w, gather), 0x5410u), d[0]);
      e2m1x8_to_bf16x8(prmt(prmt(hi.x, hi.y, gather), prmt(hi.z, hi.w, gather), 0x5410u), d[1]);
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        const __nv_bfloat162 scale = scale_pair((step_scales[s] >> (8 * r)) & 0xFFu, kNvfp4);
        frag[s][r] = bf16x2_mul(d[s / 2][2 * (s % 2)], scale);
        frag[s][r + 2] = bf16x2_mul(d[s / 2][2 * (s % 2) + 1], scale);
      }
    }
  };

  float acc[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0.f;
  uint32_t frag[2][4][4] = {};

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (stage_begin + s < stage_end) copies.issue(stage_begin + s);
    copy_commit();
  }
  uint32_t scale_next = load_scales(stage_begin + 1);
  copy_wait<kStages - 2>();
  fence_async_shared();
  __syncthreads();
  decode(stage_begin, load_scales(stage_begin), frag[0]);

  // Stage by stage (two per turn: A buffer b = stage % 2, fixed per
  // unrolled copy): multiply the stage asynchronously; wait for the previous
  // stage's multiply (freeing the other buffer and the previous x slot);
  // refill that slot; decode the next stage into the other buffer.
  for (int64_t first = stage_begin; first < stage_end; first += 2) {
#pragma unroll
    for (int b = 0; b < 2; ++b) {
      const int64_t stage = first + b;
      if (stage >= stage_end) break;
      const uint32_t x_slot = smem_base + static_cast<uint32_t>(stage % kStages) * kWgStageBytes;
      pin(acc);
      wgmma_fence();
#pragma unroll
      for (int s = 0; s < 4; ++s) wgmma_m64n128k16(acc, frag[b][s], smem_descriptor(x_slot + s * 256));
      wgmma_commit();
      pin(acc);
      wgmma_wait<1>();
      pin(frag[1 - b]);
      copy_wait<kStages - 3>();
      fence_async_shared();
      __syncthreads();
      if (stage + kStages - 1 < stage_end) copies.issue(stage + kStages - 1);
      copy_commit();
      const uint32_t scale_word = scale_next;
      scale_next = load_scales(stage + 2);
      if (stage + 1 < stage_end) decode(stage + 1, scale_word, frag[1 - b]);
    }
  }
  wgmma_wait<0>();
  pin(acc);
  copy_wait<0>();

  // acc[4 j + c]: W row n_base + 16 warp + g (+ 8 for c >= 2), x row
  // row_begin + 8 j + 2 q + c % 2.
  const float inv_global = kNvfp4 ? 1.0f / a.global_scale[t.e] : 1.0f;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t n = w_row + 8 * h;
    if (n >= N) continue;
    const float bias = a.bias && a.partial == nullptr ? __bfloat162float(a.bias[n]) : 0.f;
#pragma unroll
    for (int j = 0; j < 16; ++j)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int64_t row = row_begin + 8 * j + 2 * q + c;
        if (row >= row_end) continue;
        const float v = acc[4 * j + 2 * h + c];
        if (a.partial != nullptr)
          atomicAdd(a.partial + row * N + n, v);
        else
          a.y[row * N + n] = __float2bfloat16_rn(v * inv_global + bias);
      }
  }
#endif
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

// The dynamic shared memory a kernel needs past the 48 KB default: set
// once per device (the attribute is per device), on the first, uncaptured
// call, so that calls inside a CUDA graph capture make no such API call.
template <class Kernel>
cudaError_t allow_shared_memory(Kernel kernel, int bytes, std::atomic<uint64_t>& devices_set) {
  int device = 0;
  if (const cudaError_t bad = cudaGetDevice(&device); bad != cudaSuccess) return bad;
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if (bit != 0 && (devices_set.load() & bit) != 0) return cudaSuccess;
  if (const cudaError_t bad = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
      bad != cudaSuccess)
    return bad;
  devices_set.fetch_or(bit);
  return cudaSuccess;
}

PrefillKernel prefill_kernel = PrefillKernel::automatic;

template <bool kNvfp4>
cudaError_t launch(const PrefillArgs& a, int64_t tiles, cudaStream_t stream) {
  static std::atomic<uint64_t> mma_set{0}, wgmma_set{0};
  const dim3 grid(static_cast<unsigned>((a.N + kBN - 1) / kBN), static_cast<unsigned>(tiles),
                  static_cast<unsigned>(a.splits));
  if (prefill_kernel != PrefillKernel::mma_sync) {
    const auto kernel = fp4_prefill_wgmma_kernel<kNvfp4>;
    if (const cudaError_t bad = allow_shared_memory(kernel, kWgSmemBytes, wgmma_set); bad != cudaSuccess) return bad;
    kernel<<<grid, kThreads, kWgSmemBytes, stream>>>(a);
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
  const PrefillArgs a{x,       K,    N, packed, scales, global_scale, bias, offsets, experts, rows, y,
                      splits > 1 ? split_k_workspace : nullptr, splits};
  return nvfp4 ? launch<true>(a, tiles, stream) : launch<false>(a, tiles, stream);
}

}  // namespace qerl::kernels::cuda
