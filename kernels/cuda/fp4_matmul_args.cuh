// Internal to kernels/cuda: the arguments of the W4A16 tile kernels
// (fp4_matmul.cu's general kernel; the prefill kernels extend them).
#pragma once

#include <cstdint>

#include <cuda_bf16.h>

namespace qerl::kernels::cuda::detail {

struct MatmulArgs {
  const __nv_bfloat16* x;     // [rows, K]
  int64_t K, N;
  const uint8_t* packed;      // [E, N, K / 2]
  const uint8_t* scales;      // [E, N, K / group]
  const float* global_scale;  // [E] (NVFP4) or null (MXFP4)
  const __nv_bfloat16* bias;  // [N] or null
  const int32_t* offsets;     // [E + 1] or null: one group of rows [0, M)
  int64_t M;
  __nv_bfloat16* y;           // [rows, N]
};

}  // namespace qerl::kernels::cuda::detail
