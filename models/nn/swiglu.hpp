// SwiGLU feed-forward: down(silu(gate(x)) * up(x)). Used for dense MLPs,
// MoE experts and qwen2_moe's shared expert; the projection names are
// configurable because Mixtral experts call them w1 (gate), w3 (up), w2 (down).
#pragma once

#include <string>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "models/nn/linear.hpp"

namespace qerl::models {

struct SwiGLUNames {
  std::string gate = "gate_proj";
  std::string up = "up_proj";
  std::string down = "down_proj";

  static SwiGLUNames mixtral() { return {"w1", "w3", "w2"}; }
};

class SwiGLUImpl : public torch::nn::Module {
 public:
  SwiGLUImpl(int64_t hidden_size, int64_t intermediate_size, bool bias = false, const SwiGLUNames& names = {});

  // x: [..., hidden] model dtype -> [..., hidden] model dtype
  torch::Tensor forward(const torch::Tensor& x);

  Linear gate{nullptr}, up{nullptr}, down{nullptr};
};
TORCH_MODULE(SwiGLU);

}  // namespace qerl::models
