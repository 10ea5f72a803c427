// W4A16 prefill, v2 (see fp4_matmul_prefill.cu for v1 and the tiles):
// the same tiles with Hopper's warpgroup MMA (sm_90a): the two warpgroups of a block
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
#include "kernels/cuda/fp4_prefill.cuh"

namespace qerl::kernels::cuda::prefill {
namespace {

using namespace device;

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

}  // namespace

template <bool kNvfp4>
cudaError_t launch_wgmma(const PrefillArgs& a, dim3 grid, cudaStream_t stream) {
  static std::atomic<uint64_t> devices_set{0};
  const auto kernel = fp4_prefill_wgmma_kernel<kNvfp4>;
  if (const cudaError_t bad = allow_shared_memory(kernel, kWgSmemBytes, devices_set); bad != cudaSuccess) return bad;
  kernel<<<grid, kThreads, kWgSmemBytes, stream>>>(a);
  return cudaGetLastError();
}

template cudaError_t launch_wgmma<true>(const PrefillArgs& a, dim3 grid, cudaStream_t stream);
template cudaError_t launch_wgmma<false>(const PrefillArgs& a, dim3 grid, cudaStream_t stream);

}  // namespace qerl::kernels::cuda::prefill
