// Test helper: a weight's NVFP4 or MXFP4 codes as the quantized Linear holds them.
#pragma once

#include "kernels/fp4_linear.hpp"
#include "kernels/quantize_tensor.hpp"

namespace qerl::kernels::test {

inline Fp4Weight quantized(const torch::Tensor& w, bool nvfp4) {
  if (nvfp4) {
    const Nvfp4Weight q = nvfp4_quantize(w);
    return {q.packed, q.block_scale, q.global_scale};
  }
  const Mxfp4Weight q = mxfp4_quantize(w);
  return {q.packed, q.scale, torch::Tensor()};
}

}  // namespace qerl::kernels::test
