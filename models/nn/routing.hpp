// Routing modes of a forward call (see REFERENCE.md "MoE router replay").
// native routes by top-k; capture does the same and returns the chosen
// experts; replay takes the experts from a record while the mixing weights
// still come from the current router (softmax, gather, renormalize iff the
// model does), so the router gets gradients.
#pragma once

#include <torch/types.h>

namespace qerl::models {

enum class RoutingMode { native, capture, replay };

// Routing indices are laid out per padded position: [B, S, L_moe, K], where
// L_moe counts the MoE layers in layer order and K = num_experts_per_tok.
// Flattening the first two dims gives the [tokens, L_moe, K] record of
// REFERENCE.md in row-major (batch, position) order, padding included; the
// entries at padding positions are valid expert ids but mean nothing.
struct Routing {
  RoutingMode mode = RoutingMode::native;
  // replay: [B, S, L_moe, K] integer expert ids (int16 or int64).
  torch::Tensor indices;
  // replay, optional: [B, S] bool; false routes that position natively
  // (e.g. the last generated token, which has no record). Undefined = all.
  torch::Tensor replay_mask;

  static Routing native() { return {}; }
  static Routing capture() { return {RoutingMode::capture, {}, {}}; }
  static Routing replay(torch::Tensor indices, torch::Tensor replay_mask = {}) {
    return {RoutingMode::replay, std::move(indices), std::move(replay_mask)};
  }
};

// What a forward returns next to the logits (all undefined in native mode).
struct RoutingRecord {
  torch::Tensor indices;         // [B, S, L_moe, K] int16: experts actually used
  torch::Tensor native_indices;  // replay only: [B, S, L_moe, K] int16 the router's own top-k
};

}  // namespace qerl::models
