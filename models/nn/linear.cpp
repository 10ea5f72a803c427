// Linear forward with the dense weight or codes, and the hooks of linear.hpp.
#include "models/nn/linear.hpp"

#include <torch/nn/functional/linear.h>

#include "common/error.hpp"

namespace qerl::models {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  if (bias) this->bias = register_parameter("bias", torch::zeros({out_features}));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  const torch::Tensor input = input_hook_ ? input_hook_(x) : x;
  torch::Tensor y = codes_ ? kernels::fp4_linear(input, *codes_, bias)
                           : torch::nn::functional::linear(input, effective_weight(), bias);
  if (adapter_hook_) y = y + adapter_hook_(x);
  return y;
}

torch::Tensor LinearImpl::effective_weight() const {
  if (codes_) return kernels::fp4_dequantize(*codes_, weight.scalar_type()).to(weight.device());
  return weight_hook_ ? weight_hook_(weight) : weight;
}

void LinearImpl::set_codes(std::shared_ptr<kernels::Fp4Weight> codes) {
  if (!codes) throw Error("Linear: set_codes got no codes (use clear_codes)");
  kernels::check_fp4_weight(*codes);
  if (codes->out_features() != out_features_ || codes->in_features() != in_features_)
    throw Error("Linear [" + std::to_string(out_features_) + ", " + std::to_string(in_features_) +
                "]: codes hold a [" + std::to_string(codes->out_features()) + ", " +
                std::to_string(codes->in_features()) + "] weight");
  codes_ = std::move(codes);
}

void LinearImpl::release_dense_weight() {
  if (!codes_) throw Error("Linear: release_dense_weight without codes would leave no weight");
  torch::NoGradGuard no_grad;
  weight.set_();  // same tensor object (the registered parameter), no storage
  dense_released_ = true;
}

}  // namespace qerl::models
