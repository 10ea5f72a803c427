// ProgressLine: formatting (testable, no I/O) and drawing.
#include "runtime/progress.hpp"

#include <unistd.h>

#include <cmath>

#include <fmt/format.h>

namespace qerl::runtime {

ProgressLine::KeyMetrics ProgressLine::default_key_metrics() {
  return {{"reward", "critic/rewards/mean"}, {"tok/s", "rollout/tokens_per_s"}, {"kl", "actor/ppo_kl"}};
}

ProgressLine::ProgressLine(int64_t total_steps, std::FILE* out, KeyMetrics key_metrics)
    : total_steps_(total_steps),
      out_(out),
      key_metrics_(std::move(key_metrics)),
      interactive_(out && ::isatty(::fileno(out))) {}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s < 3600) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
}

std::string ProgressLine::format(const StepRecord& record) const {
  const int64_t done = record.step + 1;
  std::string line = fmt::format("step {}/{} | {}", done, total_steps_, format_duration(record.elapsed_s));
  const int64_t done_here = done - first_step_;  // steps this process ran
  if (done < total_steps_ && done_here > 0) {
    const double eta = record.elapsed_s / static_cast<double>(done_here) *
                       static_cast<double>(total_steps_ - done);
    line += " | ETA " + format_duration(eta);
  }
  for (const auto& [label, key] : key_metrics_) {
    auto it = record.metrics.find(key);
    if (it == record.metrics.end()) continue;
    const double v = it->second;
    line += " | " + label + " " +
            (std::fabs(v) >= 1000 ? fmt::format("{:.0f}", v) : fmt::format("{:.4g}", v));
  }
  if (const auto slowest = slowest_stage(record))
    line += fmt::format(" | slowest {} {} ({:.0f}%)", slowest->stage, format_duration(slowest->seconds),
                        100 * slowest->share);
  return line;
}

std::optional<SlowestStage> slowest_stage(const StepRecord& record) {
  static const std::string prefix = "timing_s/";
  std::optional<SlowestStage> slowest;
  double total = 0;
  for (auto it = record.metrics.lower_bound(prefix);
       it != record.metrics.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (!std::isfinite(it->second) || it->second < 0) continue;
    total += it->second;
    if (!slowest || it->second > slowest->seconds)
      slowest = SlowestStage{it->first.substr(prefix.size()), it->second, 0};
  }
  if (slowest) slowest->share = total > 0 ? slowest->seconds / total : 0;
  return slowest;
}

void ProgressLine::update(const StepRecord& record) {
  if (!out_) return;
  const std::string line = format(record);
  if (interactive_)
    std::fprintf(out_, "\r%s\033[K", line.c_str());
  else
    std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
  drawn_ = true;
}

void ProgressLine::finish() {
  if (out_ && interactive_ && drawn_) {
    std::fprintf(out_, "\n");
    std::fflush(out_);
  }
  drawn_ = false;
}

}  // namespace qerl::runtime
