// Router-replay diagnostics (REFERENCE.md "MoE router replay"): how often
// the learner's own top-k expert set differs from the sampler's, per MoE
// layer, and how unevenly the experts are loaded. Routes are laid out as
// models::Routing: [B, S, L_moe, K] expert ids; `valid` marks the (row,
// position) pairs that carry a record.
#pragma once

#include <torch/types.h>

namespace qerl::rl {

// a, b: [B, S, L, K] integer expert ids; valid: [B, S] bool. Returns [L]
// float32: the fraction of valid positions whose top-k *sets* differ in
// layer l (order within the K slots does not matter). 0 where none is valid.
torch::Tensor routing_mismatch_per_layer(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& valid);

// routes: [B, S, L, K] integer ids in [0, num_experts); valid: [B, S] bool.
// Returns [L] float32 max_load * E / total - 1 per layer (0 = perfectly
// even; E - 1 = one expert takes everything), counting each (position,
// slot) once. 0 where no position is valid.
torch::Tensor expert_load_imbalance(const torch::Tensor& routes, const torch::Tensor& valid, int64_t num_experts);

}  // namespace qerl::rl
