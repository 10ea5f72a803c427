// LibTorch entry points of the CUDA kernels in fp4_cuda.hpp, for CUDA
// tensors on the current stream. Shapes and dtypes are checked here
// (qerl::Error, one line). Built where nvcc is found; linked only in
// QERL_CUDA builds.
#pragma once

#include <torch/types.h>

#include "kernels/fp4_linear.hpp"

namespace qerl::kernels::cuda {

// dequant(W) as [out, in] bf16 on W's (CUDA) device.
torch::Tensor fp4_dequantize_bf16(const Fp4Weight& w);

// y = x · dequant(W)ᵀ + b for bf16 x [..., in] on the device of W: rows
// <= 8 through the in-register W4A16 GEMV; more rows dequantize W into a
// temporary and use LibTorch's matmul (the prefill kernel is issue 15's
// next step).
torch::Tensor fp4_linear_bf16(const torch::Tensor& x, const Fp4Weight& w, const torch::Tensor& bias);

}  // namespace qerl::kernels::cuda
