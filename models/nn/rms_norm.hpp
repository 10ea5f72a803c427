// RMSNorm as in HF Llama/Qwen/Mixtral: normalize in float32, cast back to
// the input dtype, then scale by `weight` (so in bf16 the product is taken
// in bf16, as HF does). Also used per head for qwen3's q_norm / k_norm.
// Without gradients on a GPU (bf16), one fused kernel computes it
// (kernels/cuda/decoder_ops.hpp: the same roundings, the fp32 sum of
// squares in another order).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <utility>

namespace qerl::models {

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);

  // x: [..., dim] any float dtype -> same shape and dtype
  torch::Tensor forward(const torch::Tensor& x);

  // The residual sum and its norm: (x + residual, forward(x + residual)),
  // one fused kernel where forward takes one.
  std::pair<torch::Tensor, torch::Tensor> forward_added(const torch::Tensor& x, const torch::Tensor& residual);

  torch::Tensor weight;  // [dim], initialized to ones

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

}  // namespace qerl::models
