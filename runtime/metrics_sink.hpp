// MetricsSink: <out_dir>/metrics.jsonl, one JSON object per finished step.
// Each line is written and flushed whole; a write that fails part-way (a full
// disk) is cut back off the file, so only complete lines are ever left.
#pragma once

#include <string>

#include "runtime/step_record.hpp"

namespace qerl::runtime {

class MetricsSink {
 public:
  enum class Open { truncate, append };  // append: a resumed run continues the file
  // Creates the file, or truncates / appends to it; throws qerl::Error
  // naming it on failure.
  explicit MetricsSink(std::string path, Open mode = Open::truncate);
  ~MetricsSink();
  MetricsSink(const MetricsSink&) = delete;
  MetricsSink& operator=(const MetricsSink&) = delete;

  void write(const StepRecord& record);  // throws qerl::Error on an I/O error (no partial line stays)
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace qerl::runtime
