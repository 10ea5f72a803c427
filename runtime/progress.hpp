// ProgressLine: the one status line a run keeps redrawing on stderr —
// step/total, elapsed, ETA, a few key metrics (reward, tokens/s) and the
// step's slowest stage with its share of the stage time. On a
// terminal it redraws in place; when stderr is a file or pipe it prints one
// line per step so logs stay readable.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/step_record.hpp"

namespace qerl::runtime {

class ProgressLine {
 public:
  // (label, metric key) pairs shown when the step has them.
  using KeyMetrics = std::vector<std::pair<std::string, std::string>>;
  static KeyMetrics default_key_metrics();  // reward, tok/s, kl

  explicit ProgressLine(int64_t total_steps, std::FILE* out = stderr,
                        KeyMetrics key_metrics = default_key_metrics());

  // A resumed run: its first step; the ETA then counts only the steps this
  // process ran (elapsed time starts with it), the step shown stays the true one.
  void start_at(int64_t first_step) { first_step_ = first_step; }

  // "step 3/60 | 12.4s | ETA 3m58s | reward 0.531 | tok/s 1234 | slowest rollout 3.1s (62%)"
  std::string format(const StepRecord& record) const;
  void update(const StepRecord& record);  // draws format(record)
  void finish();                          // ends the line on a terminal

 private:
  int64_t total_steps_;
  int64_t first_step_ = 0;
  std::FILE* out_;
  KeyMetrics key_metrics_;
  bool interactive_;
  bool drawn_ = false;
};

// The stage with the largest "timing_s/<stage>" of a step, and its share of
// the sum of the step's stage times (stages of a colocated on-policy
// pipeline run one after another, so this is where the step's time went).
struct SlowestStage {
  std::string stage;
  double seconds = 0;
  double share = 0;  // 0..1
};
std::optional<SlowestStage> slowest_stage(const StepRecord& record);  // nullopt: no timings

// "42.0s", "3m58s", "1h02m".
std::string format_duration(double seconds);

}  // namespace qerl::runtime
