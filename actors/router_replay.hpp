// MoE router replay in the learner (REFERENCE.md "MoE router replay"):
// R1 records only (the rollout's routes are compared with the learner's own
// top-k), R2 replays the routes the learner recorded in its old-log-prob
// pass, R3 replays the rollout's routes in the old-log-prob pass and every
// update. The reference always routes natively.
#pragma once

#include <map>
#include <string>

#include "actors/payloads.hpp"
#include "models/nn/routing.hpp"
#include "rl/settings.hpp"

namespace qerl::actors {

using rl::ReplayMode;

// [B, P + R] bool: the positions whose route the sampler recorded, i.e. real
// tokens except each row's last response token (it was sampled, never fed
// back through the model, so it has no route).
torch::Tensor recorded_positions(const RolloutBatch& batch);

// router/mismatch_rate (overall and /layer_<l>): the share of recorded
// (position, layer) pairs whose top-k set under the learner's own router
// (`learner_native`, [B, P + R, L, K]) differs from the sampler's
// (`batch.routing`); router/load_imbalance (mean and /layer_<l>) of the
// sampler's routes.
void add_routing_metrics(const RolloutBatch& batch, const torch::Tensor& learner_native, int64_t num_experts,
                         std::map<std::string, double>& metrics);

}  // namespace qerl::actors
