// Linear forward with the quantization hooks of linear.hpp.
#include "models/nn/linear.hpp"

#include <torch/nn/functional/linear.h>

namespace qerl::models {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool bias) {
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  if (bias) this->bias = register_parameter("bias", torch::zeros({out_features}));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  const torch::Tensor input = input_hook_ ? input_hook_(x) : x;
  torch::Tensor y = torch::nn::functional::linear(input, effective_weight(), bias);
  if (adapter_hook_) y = y + adapter_hook_(x);
  return y;
}

}  // namespace qerl::models
