// Internal to kernels/cuda: the W4A16 kernel for the few-row case (decode,
// at most 32 rows of x per pass of a group of rows), called by fp4_matmul.cu when
// fp4_decode_fits says it can take the shapes and pointers; and its bf16
// twin for bf16 experts.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace qerl::kernels::cuda::detail {

struct DecodeArgs {
  const __nv_bfloat16* x;     // [rows, K]
  int K, N;
  const uint8_t* packed;      // [E, N, K / 2]
  const uint8_t* scales;      // [E, N, K / group]
  const float* global_scale;  // [E] (NVFP4) or null (MXFP4)
  const __nv_bfloat16* bias;  // [N] or null
  const int32_t* offsets;     // [E + 1] or null: rows [0, M)
  int M;
  __nv_bfloat16* y;           // [rows, N]
};

// Whether the decode kernel takes these: K a multiple of 32 (each lane's 32
// values of a 128-wide K step are all inside K or all outside), 16-byte
// aligned codes and x, 2-byte aligned NVFP4 scales, sizes that fit int.
bool fp4_decode_fits(int64_t rows_per_group, int64_t K, int64_t N, const void* x, const uint8_t* packed,
                     const uint8_t* scales, bool nvfp4);

// y = x · dequant(W)ᵀ in passes of rows_per_group (at most 32) rows (more
// rows loop over W again); wide: more, smaller warps per block for at most
// 8 rows; compact: blocks of 4 warps, 4 per SM, for at most 16 rows;
// narrow: blocks of 8 warps, 2 per SM; stream: persistent warps owning
// whole 16-row tiles of W (all of K), for at most 16 rows.
enum class DecodeVariant { narrow, wide, compact, stream };
cudaError_t fp4_decode_matmul(const DecodeArgs& a, int64_t rows_per_group, int64_t experts, DecodeVariant variant,
                              cudaStream_t stream);

// bf16 experts at decode sizes (bf16_grouped_decode_bf16 in fp4_cuda.hpp):
// the stream variant's persistent warps with W read as bf16. Takes at most
// 16 rows per pass, K a multiple of 64, 16-byte aligned x and W.
bool bf16_grouped_decode_fits(int64_t rows_per_group, int64_t K, int64_t N, const void* x, const void* w);
cudaError_t bf16_grouped_decode_matmul(const __nv_bfloat16* x, const int32_t* offsets, int64_t experts,
                                       int64_t rows_per_group, const __nv_bfloat16* w, int64_t N, int64_t K,
                                       __nv_bfloat16* y, cudaStream_t stream);

}  // namespace qerl::kernels::cuda::detail
