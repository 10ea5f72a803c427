// group_advantages: per-group mean / unbiased std by scatter-add over dense
// group indices. Arbitrary ids are mapped to 0..G-1 by sorting rather than
// torch::unique so that no host sync is needed (G is bounded by B, so every
// per-group buffer is allocated with B slots).
#include "rl/advantages.hpp"

#include <map>
#include <utility>

#include "common/error.hpp"
#include "rl/detail/common.hpp"

namespace qerl::rl {
namespace {

// group_ids: [B] int64 -> [B] int64 in 0..G-1, equal exactly where the ids are equal.
torch::Tensor dense_group_index(const torch::Tensor& group_ids) {
  auto [sorted, order] = group_ids.sort();
  // 1 where a sorted id starts a new group; its running sum is the group's index.
  auto starts = torch::ones_like(sorted);
  starts.slice(0, 0, 1).zero_();
  starts.slice(0, 1).copy_(sorted.slice(0, 1) != sorted.slice(0, 0, -1));
  return torch::empty_like(order).index_put_({order}, starts.cumsum(0));
}

// values: [B] -> [B] per-group sums, indexed by the dense group index.
torch::Tensor group_sums(const torch::Tensor& values, const torch::Tensor& index) {
  return torch::zeros_like(values).index_add_(0, index, values);
}

}  // namespace

torch::Tensor group_advantages(const torch::Tensor& rewards, const torch::Tensor& group_ids, bool norm_by_std,
                               double eps) {
  const std::string where = "group_advantages";
  detail::require_dim(rewards, 1, where, "rewards");
  detail::require_dim(group_ids, 1, where, "group_ids");
  detail::require_same_shape(rewards, group_ids, where, "rewards", "group_ids");
  detail::require_floating(rewards, where, "rewards");
  detail::require(group_ids.scalar_type() == torch::kLong, where, "group_ids must be int64");
  detail::require(rewards.device() == group_ids.device(), where, "rewards and group_ids are on different devices");
  const auto r = rewards.to(torch::kFloat);
  if (r.numel() == 0) return r.clone();

  const auto index = dense_group_index(group_ids);
  const auto count = group_sums(torch::ones_like(r), index);  // [B]: slot g holds |group g|
  const auto mean = group_sums(r, index) / count.clamp_min(1);
  auto advantage = r - mean.index({index});
  if (norm_by_std) {
    // Bessel-corrected variance; singleton groups divide by 1 here and are zeroed below.
    const auto variance = group_sums(advantage.square(), index) / (count - 1).clamp_min(1);
    advantage = advantage / (variance.sqrt().index({index}) + eps);
  }
  return torch::where(count.index({index}) > 1, advantage, torch::zeros_like(advantage));
}

GroupOutcomes group_outcomes(const std::vector<int64_t>& group_ids, const std::vector<uint8_t>& correct) {
  if (group_ids.size() != correct.size())
    throw Error("group_outcomes: " + std::to_string(group_ids.size()) + " group ids for " +
                std::to_string(correct.size()) + " correctness flags");
  std::map<int64_t, std::pair<int64_t, int64_t>> groups;  // id -> (responses, correct ones)
  for (size_t i = 0; i < group_ids.size(); ++i) {
    auto& [responses, solved] = groups[group_ids[i]];
    ++responses;
    solved += correct[i] ? 1 : 0;
  }
  GroupOutcomes out;
  if (groups.empty()) return out;
  for (const auto& entry : groups) {
    const auto& [responses, solved] = entry.second;
    out.solve_none += solved == 0 ? 1 : 0;
    out.solve_all += solved == responses ? 1 : 0;
  }
  out.solve_none /= static_cast<double>(groups.size());
  out.solve_all /= static_cast<double>(groups.size());
  return out;
}

}  // namespace qerl::rl
