// StepTracker (driver-private): collects the firing reports of all stage
// replicas and turns each finished step into a StepRecord, in step order —
// replica metrics averaged, timing_s/<stage> the slowest replica's wall time.
// Plain C++ (no CAF), so the aggregation is testable on its own.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "runtime/step_record.hpp"

namespace qerl::runtime {

class Graph;
struct Placement;

// What a stage replica reports after each step it ran.
struct FiringReport {
  int node = -1;
  int replica = 0;
  int64_t step = 0;
  double wall_s = 0;           // run() only, without waiting for the device lease
  int64_t weight_version = 0;  // of its outputs
  std::map<std::string, double> metrics;
  double started_unix_s = 0;   // when run() began (system clock, comparable across processes of a host)
};

class StepTracker {
 public:
  // Steps first_step .. total_steps-1 (first_step > 0 when resuming).
  StepTracker(const Graph& graph, const Placement& placement, int64_t total_steps,
              int64_t first_step = 0);

  void record(const FiringReport& report);
  int64_t next() const { return next_; }  // oldest step without a StepRecord yet
  bool next_complete() const;             // every replica has reported next()
  StepRecord take_next(double elapsed_s);  // the record of next(); advances next()
  // Labels ("learner", "rollout[1]") of the replicas that have not reported next().
  std::vector<std::string> waiting_on() const;

 private:
  struct StepState {
    std::set<std::pair<int, int>> done;  // (node, replica)
    std::map<std::string, std::pair<double, int>> sums;  // metric -> (sum, count)
    std::map<std::string, double> slowest;               // stage -> max wall seconds
    int64_t weight_version = 0;
  };
  std::vector<std::pair<int, int>> replicas_;  // every (node, replica)
  std::vector<std::string> labels_;            // parallel to replicas_
  std::vector<std::string> node_names_;
  int64_t total_steps_;
  int64_t next_ = 0;
  std::map<int64_t, StepState> steps_;
};

}  // namespace qerl::runtime
