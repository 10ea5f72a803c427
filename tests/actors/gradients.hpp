// Test helper: a model's parameter gradients (zeros where none), cleared after.
#pragma once

#include <vector>

#include <torch/types.h>

#include "models/nn/causal_lm.hpp"

namespace qerl::actors::testing {

inline std::vector<torch::Tensor> take_gradients(models::CausalLMImpl& lm) {
  std::vector<torch::Tensor> out;
  for (auto& p : lm.parameters()) out.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  lm.zero_grad();
  return out;
}

}  // namespace qerl::actors::testing
