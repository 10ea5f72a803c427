// ProgressLine: the one status line a run keeps redrawing on stderr —
// step/total, elapsed, ETA and a few key metrics (reward, tokens/s). On a
// terminal it redraws in place; when stderr is a file or pipe it prints one
// line per step so logs stay readable.
#pragma once

#include <cstdint>
#include <cstdio>
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

  // "step 3/60 | 12.4s | ETA 3m58s | reward 0.531 | tok/s 1234"
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

// "42.0s", "3m58s", "1h02m".
std::string format_duration(double seconds);

}  // namespace qerl::runtime
