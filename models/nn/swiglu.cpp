// SwiGLU forward.
#include "models/nn/swiglu.hpp"

#include <torch/types.h>

namespace qerl::models {

SwiGLUImpl::SwiGLUImpl(int64_t hidden_size, int64_t intermediate_size, bool bias, const SwiGLUNames& names) {
  using torch::nn::LinearOptions;
  gate = register_module(names.gate, torch::nn::Linear(LinearOptions(hidden_size, intermediate_size).bias(bias)));
  up = register_module(names.up, torch::nn::Linear(LinearOptions(hidden_size, intermediate_size).bias(bias)));
  down = register_module(names.down, torch::nn::Linear(LinearOptions(intermediate_size, hidden_size).bias(bias)));
}

torch::Tensor SwiGLUImpl::forward(const torch::Tensor& x) {
  return down->forward(torch::silu(gate->forward(x)) * up->forward(x));
}

}  // namespace qerl::models
