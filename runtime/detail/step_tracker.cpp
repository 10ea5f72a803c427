// StepTracker: per-step bookkeeping of firing reports.
#include "runtime/detail/step_tracker.hpp"

#include <algorithm>

#include "runtime/graph.hpp"
#include "runtime/placement.hpp"

namespace qerl::runtime {

StepTracker::StepTracker(const Graph& graph, const Placement& placement, int64_t total_steps,
                         int64_t first_step)
    : total_steps_(total_steps), next_(first_step) {
  for (const auto& n : graph.nodes()) node_names_.push_back(n.name);
  for (const auto& r : placement.replicas) {
    replicas_.emplace_back(r.node, r.replica);
    labels_.push_back(r.label());
  }
}

void StepTracker::record(const FiringReport& report) {
  if (report.step < next_ || report.step >= total_steps_) return;
  StepState& s = steps_[report.step];
  if (!s.done.insert({report.node, report.replica}).second) return;  // duplicate report
  for (const auto& [key, value] : report.metrics) {
    auto& [sum, count] = s.sums[key];
    sum += value;
    ++count;
  }
  double& slowest = s.slowest[node_names_.at(report.node)];
  slowest = std::max(slowest, report.wall_s);
  s.weight_version = std::max(s.weight_version, report.weight_version);
}

bool StepTracker::next_complete() const {
  if (next_ >= total_steps_) return false;
  auto it = steps_.find(next_);
  return it != steps_.end() && it->second.done.size() == replicas_.size();
}

StepRecord StepTracker::take_next(double elapsed_s) {
  StepState s = std::move(steps_[next_]);
  steps_.erase(next_);
  StepRecord r;
  r.step = next_;
  r.total_steps = total_steps_;
  r.weight_version = s.weight_version;
  r.elapsed_s = elapsed_s;
  for (const auto& [key, sum_count] : s.sums) r.metrics[key] = sum_count.first / sum_count.second;
  for (const auto& [stage, wall] : s.slowest) r.metrics["timing_s/" + stage] = wall;
  ++next_;
  return r;
}

std::vector<std::string> StepTracker::waiting_on() const {
  std::vector<std::string> out;
  auto it = steps_.find(next_);
  for (size_t i = 0; i < replicas_.size(); ++i)
    if (it == steps_.end() || !it->second.done.count(replicas_[i])) out.push_back(labels_[i]);
  return out;
}

}  // namespace qerl::runtime
