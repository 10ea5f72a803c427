// select_informative_groups: one pass for each group's reward range, one
// pass to keep the rows of the groups whose range exceeds the tolerance.
// A NaN or infinite reward is an error (a broken reward stage), not a group
// to keep or drop silently.
#include "group_filter.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "common/error.hpp"

namespace qerl::examples {

GroupSelection select_informative_groups(const std::vector<int64_t>& group_ids,
                                         const std::vector<double>& rewards, double tolerance) {
  if (group_ids.size() != rewards.size())
    throw Error("dapo_filter: " + std::to_string(rewards.size()) + " rewards for " +
                std::to_string(group_ids.size()) + " samples");
  std::map<int64_t, std::pair<double, double>> range;  // group id -> (min, max) reward
  for (size_t i = 0; i < group_ids.size(); ++i) {
    if (!std::isfinite(rewards[i]))
      throw Error("dapo_filter: the reward of sample " + std::to_string(i) + " is not a finite number");
    auto [it, fresh] = range.try_emplace(group_ids[i], rewards[i], rewards[i]);
    if (fresh) continue;
    it->second.first = std::min(it->second.first, rewards[i]);
    it->second.second = std::max(it->second.second, rewards[i]);
  }
  std::map<int64_t, bool> uniform;
  for (const auto& [id, min_max] : range) uniform[id] = min_max.second - min_max.first <= tolerance;
  GroupSelection out;
  out.groups = static_cast<int64_t>(range.size());
  for (const auto& [id, is_uniform] : uniform) out.uniform_groups += is_uniform;
  for (size_t i = 0; i < group_ids.size(); ++i)
    if (!uniform.at(group_ids[i])) out.kept_rows.push_back(static_cast<int64_t>(i));
  return out;
}

}  // namespace qerl::examples
