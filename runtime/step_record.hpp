// StepRecord: what the driver knows once every stage replica finished a
// step — the line appended to metrics.jsonl and what the progress line shows.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace qerl::runtime {

struct StepRecord {
  int64_t step = 0;            // 0-based
  int64_t total_steps = 0;     // run.steps
  int64_t weight_version = 0;  // newest weight version produced in this step
  double elapsed_s = 0;        // since the run started (setup included)
  // Stage metrics (replicas averaged) and "timing_s/<stage>" (slowest replica).
  std::map<std::string, double> metrics;
};

// One JSON object, no newline: {"step":..,"weight_version":..,"elapsed_s":..,<metrics>}.
// Non-finite metric values are written as null.
std::string to_json_line(const StepRecord& record);

}  // namespace qerl::runtime
