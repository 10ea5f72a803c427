// Router replay helpers for the learner: the mask of positions that carry a
// sampler route and the mismatch / load-imbalance metrics (rl/routing_stats
// does the arithmetic).
#include "actors/router_replay.hpp"

#include "common/error.hpp"
#include "rl/routing_stats.hpp"

namespace qerl::actors {

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
