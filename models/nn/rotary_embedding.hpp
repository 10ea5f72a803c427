// Rotary position embedding, default ("rope_type": "default") variant only:
// inv_freq = 1 / theta^(2i/D) in float32; cos/sin of position * inv_freq are
// computed in float32 and cast to the model dtype, then applied to q and k
// with the rotate-half convention of HF Llama/Qwen/Mixtral.
#pragma once

#include <torch/types.h>

namespace qerl::models {

struct RopeTables {
  torch::Tensor cos;  // [B, S, D] model dtype
  torch::Tensor sin;  // [B, S, D] model dtype
};

class RotaryEmbedding {
 public:
  RotaryEmbedding(int64_t head_dim, double theta);

  // positions: [B, S] int64 -> tables in `dtype` on positions' device.
  RopeTables tables(const torch::Tensor& positions, torch::ScalarType dtype);

 private:
  torch::Tensor inv_freq_;         // [D/2] float32 on CPU
  torch::Tensor inv_freq_device_;  // the same on the last device used
};

// x: [B, H, S, D]; tables [B, S, D] -> rotated x, same shape and dtype.
torch::Tensor apply_rotary(const torch::Tensor& x, const RopeTables& rope);

}  // namespace qerl::models
