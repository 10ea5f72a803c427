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

// Routes of one RL step under router_replay.mode: what each of the
// learner's forwards is asked to do, and what the recording pass (the
// old-log-prob pass, or the first update forward when it is fused with it)
// saw: the learner's own top-k, for the mismatch metric, and under R2 the
// routes later replayed. Everything stays on the learner's device.
class RouteBook {
 public:
  RouteBook() = default;  // inactive: every forward routes natively
  // `batch` must carry the sampler's routes; it must outlive the book.
  RouteBook(ReplayMode mode, const RolloutBatch& batch, torch::Device device);

  bool active() const { return mode_ != ReplayMode::disabled; }
  // The routing request for the forward over `rows` ([b] int64, CPU).
  models::Routing request(const torch::Tensor& rows, bool recording) const;
  // Records what the recording forward over `rows` chose.
  void record(const torch::Tensor& rows, const models::RoutingRecord& seen);
  // [B, P + R, L, K] int16: the learner's own routes (undefined before a record).
  const torch::Tensor& learner_native() const { return learner_native_; }

 private:
  ReplayMode mode_ = ReplayMode::disabled;
  const RolloutBatch* batch_ = nullptr;
  torch::Device device_{torch::kCPU};
  torch::Tensor recorded_;        // [B, P + R] bool: positions with a sampler route
  torch::Tensor learner_native_;  // [B, P + R, L, K] int16, filled by the recording pass
  torch::Tensor learner_routes_;  // R2: [B, P + R, L, K] int16 routes the learner used then
};

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
