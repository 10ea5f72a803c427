// Router replay helpers for the learner: the mask of positions that carry a
// sampler route and the mismatch / load-imbalance metrics (rl/routing_stats
// does the arithmetic).
#include "actors/router_replay.hpp"

#include "common/error.hpp"
#include "rl/routing_stats.hpp"

namespace qerl::actors {

RouteBook::RouteBook(ReplayMode mode, const RolloutBatch& batch, torch::Device device)
    : mode_(mode), batch_(&batch), device_(device) {
  if (active() && !batch.routing.defined()) throw Error("router replay: the batch carries no routes");
  if (active()) recorded_ = recorded_positions(batch);
}

models::Routing RouteBook::request(const torch::Tensor& rows, bool recording) const {
  auto pick = [&](const torch::Tensor& t) { return t.index_select(0, rows.to(t.device())).to(device_); };
  switch (mode_) {
    case ReplayMode::disabled: return models::Routing::native();
    case ReplayMode::r1: return recording ? models::Routing::capture() : models::Routing::native();
    case ReplayMode::r2:
      return recording ? models::Routing::capture() : models::Routing::replay(pick(learner_routes_), pick(recorded_));
    case ReplayMode::r3: return models::Routing::replay(pick(batch_->routing), pick(recorded_));
  }
  return models::Routing::native();
}

void RouteBook::record(const torch::Tensor& rows, const models::RoutingRecord& seen) {
  if (!active()) return;
  // Under R3 the forward used the sampler's routes; its own choice is native_indices.
  const torch::Tensor own = mode_ == ReplayMode::r3 ? seen.native_indices : seen.indices;
  if (!own.defined()) throw Error("router replay: the learner's forward returned no routing record");
  if (!learner_native_.defined())
    learner_native_ = torch::zeros({batch_->size(), own.size(1), own.size(2), own.size(3)},
                                   torch::dtype(torch::kShort).device(own.device()));
  learner_native_.index_copy_(0, rows.to(own.device()), own.to(torch::kShort));
  if (mode_ == ReplayMode::r2) learner_routes_ = learner_native_;
}

torch::Tensor recorded_positions(const RolloutBatch& batch) {
  const int64_t P = batch.prompt_width, R = batch.response_width();
  torch::Tensor mask = batch.attention_mask.to(torch::kCPU).to(torch::kBool).clone();  // [B, P + R]
  if (R == 0) return mask;
  const torch::Tensor lengths = batch.response_mask.to(torch::kCPU).to(torch::kLong).sum(1);  // [B]
  const torch::Tensor last = (lengths + (P - 1)).clamp_min(0);
  const torch::Tensor has_response = lengths > 0;
  const torch::Tensor is_last = torch::zeros_like(mask).scatter_(1, last.unsqueeze(1), has_response.unsqueeze(1));
  return mask & ~is_last;
}

void add_routing_metrics(const RolloutBatch& batch, const torch::Tensor& learner_native, int64_t num_experts,
                         std::map<std::string, double>& metrics) {
  if (!batch.routing.defined() || !learner_native.defined()) return;
  const torch::Tensor valid = recorded_positions(batch);
  const torch::Tensor sampler = batch.routing.to(torch::kCPU);
  const torch::Tensor mismatch = rl::routing_mismatch_per_layer(sampler, learner_native.to(torch::kCPU), valid);
  const torch::Tensor imbalance = rl::expert_load_imbalance(sampler, valid, num_experts);
  for (int64_t l = 0; l < mismatch.size(0); ++l) {
    metrics["router/mismatch_rate/layer_" + std::to_string(l)] = mismatch[l].item<double>();
    metrics["router/load_imbalance/layer_" + std::to_string(l)] = imbalance[l].item<double>();
  }
  metrics["router/mismatch_rate"] = mismatch.mean().item<double>();
  metrics["router/load_imbalance"] = imbalance.mean().item<double>();
}

}  // namespace qerl::actors
