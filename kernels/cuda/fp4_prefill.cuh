// Internal to kernels/cuda: what the two W4A16 prefill kernels share
// (fp4_matmul_prefill.cu, mma.sync; fp4_matmul_prefill_wgmma.cu, wgmma):
// the tile sizes, the launch arguments, the block's tile and the cp.async
// copies of a K stage. See fp4_matmul_prefill.cu for the design.
#pragma once

#include <atomic>
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/fp4_device.cuh"
#include "kernels/cuda/fp4_matmul_args.cuh"

namespace qerl::kernels::cuda::prefill {

constexpr int kBM = 128, kBN = 128, kBK = 64, kStages = 4, kThreads = 256;
constexpr int kXPitch = kBK + 8;        // bf16 per x row in shared memory (144 bytes: no bank conflicts)
constexpr int kCodePitch = kBK / 2;     // bytes per W row of codes per stage
constexpr int kStageBytes = kBM * kXPitch * 2 + kBN * kCodePitch;
constexpr int kSmemBytes = kStages * kStageBytes;

// The general kernel's arguments (offsets null: M rows; else experts
// groups of rows), plus split-K (one group of rows only): blockIdx.z sums
// stages [z * stages / splits, (z + 1) * stages / splits) into partial
// ([rows, N] fp32, zeroed) with atomics; finish_split_k writes y.
struct PrefillArgs : detail::MatmulArgs {
  int64_t experts;
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
      nvfp4 ? __float2bfloat16_rn(device::e4m3_value(static_cast<uint8_t>(raw)))
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

// Launches the wgmma kernel (fp4_matmul_prefill_wgmma.cu) on grid.
template <bool kNvfp4>
cudaError_t launch_wgmma(const PrefillArgs& a, dim3 grid, cudaStream_t stream);

}  // namespace qerl::kernels::cuda::prefill
