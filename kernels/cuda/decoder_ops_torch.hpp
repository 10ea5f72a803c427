// LibTorch entry points of decoder_ops.hpp's kernels, for bf16 CUDA
// tensors on the current stream, without autograd (the models call them
// when gradients are off; training keeps the composed ops). Shapes are
// checked here (qerl::Error, one line).
#pragma once

#include <torch/types.h>

namespace qerl::kernels::cuda {

// x: [..., dim] bf16, weight: [dim] bf16 -> RMSNorm(x) [..., dim] bf16.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// x: [B, S, H, D] bf16 (any strides); cos, sin: [B, S, D] bf16 ->
// x * cos + rotate_half(x) * sin as [B, H, S, D] bf16, contiguous.
torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace qerl::kernels::cuda
