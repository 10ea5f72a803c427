// SwiGLU forward.
#include "models/nn/swiglu.hpp"

#include <torch/types.h>

namespace qerl::models {

SwiGLUImpl::SwiGLUImpl(int64_t hidden_size, int64_t intermediate_size, bool bias, const SwiGLUNames& names) {
  gate = register_module(names.gate, Linear(hidden_size, intermediate_size, bias));
  up = register_module(names.up, Linear(hidden_size, intermediate_size, bias));
  down = register_module(names.down, Linear(intermediate_size, hidden_size, bias));
}

torch::Tensor SwiGLUImpl::forward(const torch::Tensor& x) {
  return down->forward(torch::silu(gate->forward(x)) * up->forward(x));
}

}  // namespace qerl::models
