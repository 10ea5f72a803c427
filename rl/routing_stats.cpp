// Router-replay diagnostics: top-k set mismatch and expert load imbalance
// per MoE layer (see routing_stats.hpp). Sets are compared by sorting each
// position's K ids, so [3, 1] and [1, 3] count as the same route.
#include "rl/routing_stats.hpp"

#include "rl/detail/common.hpp"

namespace qerl::rl {

torch::Tensor routing_mismatch_per_layer(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& valid) {
  const std::string where = "routing_mismatch_per_layer";
  detail::require_dim(a, 4, where, "a");
  detail::require_same_shape(a, b, where, "a", "b");
  detail::require_dim(valid, 2, where, "valid");
  detail::require(valid.size(0) == a.size(0) && valid.size(1) == a.size(1), where,
                  "valid " + detail::shape_of(valid) + " does not match routes " + detail::shape_of(a));
  const auto sorted_a = std::get<0>(a.to(torch::kLong).sort(-1));
  const auto sorted_b = std::get<0>(b.to(b.device()).to(torch::kLong).sort(-1));
  const auto differs = (sorted_a != sorted_b.to(sorted_a.device())).any(-1);  // [B, S, L]
  const auto mask = valid.to(differs.device()).to(torch::kBool).unsqueeze(-1);  // [B, S, 1]
  const auto count = mask.sum().to(torch::kFloat);
  const auto per_layer = (differs & mask).sum(std::vector<int64_t>{0, 1}).to(torch::kFloat);  // [L]
  return torch::where(count > 0, per_layer / count.clamp_min(1), torch::zeros_like(per_layer));
}

torch::Tensor expert_load_imbalance(const torch::Tensor& routes, const torch::Tensor& valid, int64_t num_experts) {
  const std::string where = "expert_load_imbalance";
  detail::require_dim(routes, 4, where, "routes");
  detail::require_dim(valid, 2, where, "valid");
  detail::require(num_experts > 0, where, "num_experts must be positive");
  detail::require(valid.size(0) == routes.size(0) && valid.size(1) == routes.size(1), where,
                  "valid " + detail::shape_of(valid) + " does not match routes " + detail::shape_of(routes));
  const int64_t L = routes.size(2), K = routes.size(3);
  const auto keep = valid.to(routes.device()).to(torch::kBool).reshape({-1});  // [B*S]
  const auto ids = routes.to(torch::kLong).reshape({-1, L, K}).index({keep});  // [T, L, K]
  if (ids.size(0) == 0) return torch::zeros({L});
  detail::require(ids.min().item<int64_t>() >= 0 && ids.max().item<int64_t>() < num_experts, where,
                  "expert ids must lie in [0, " + std::to_string(num_experts) + ")");
  // load[l, e] = how many (position, slot) pairs of layer l chose expert e.
  const auto layer_major = ids.permute({1, 0, 2}).reshape({L, -1});  // [L, T*K]
  auto load = torch::zeros({L, num_experts}, torch::kFloat).to(routes.device());
  load.scatter_add_(1, layer_major, torch::ones_like(layer_major, torch::kFloat));
  const double total = static_cast<double>(ids.size(0) * K);
  return std::get<0>(load.max(1)) * static_cast<double>(num_experts) / total - 1.0;
}

}  // namespace qerl::rl
