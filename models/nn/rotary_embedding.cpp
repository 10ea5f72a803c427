// RoPE tables and application; formulas as in HF's default RoPE
// (compute_default_rope_parameters / apply_rotary_pos_emb).
#include "models/nn/rotary_embedding.hpp"

#include <torch/types.h>

namespace qerl::models {

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, double theta) {
  auto exponent = torch::arange(0, head_dim, 2, torch::kLong).to(torch::kFloat) / static_cast<double>(head_dim);
  inv_freq_ = 1.0 / torch::pow(theta, exponent);
}

RopeTables RotaryEmbedding::tables(const torch::Tensor& positions, torch::ScalarType dtype) {
  if (!inv_freq_device_.defined() || inv_freq_device_.device() != positions.device())
    inv_freq_device_ = inv_freq_.to(positions.device());
  // freqs: [B, S, D/2] float32
  auto freqs = positions.to(torch::kFloat).unsqueeze(-1) * inv_freq_device_;
  auto angles = torch::cat({freqs, freqs}, -1);
  return {angles.cos().to(dtype), angles.sin().to(dtype)};
}

namespace {
torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}
}  // namespace

torch::Tensor apply_rotary(const torch::Tensor& x, const RopeTables& rope) {
  auto cos = rope.cos.unsqueeze(1);  // [B, 1, S, D]
  auto sin = rope.sin.unsqueeze(1);
  return x * cos + rotate_half(x) * sin;
}

}  // namespace qerl::models
