// metrics.jsonl writing: nlohmann-json for the object, POSIX write() so one
// line is one write(2) on an O_APPEND descriptor.
#include "runtime/metrics_sink.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace qerl::runtime {

std::string to_json_line(const StepRecord& record) {
  nlohmann::ordered_json j;
  j["step"] = record.step;
  j["weight_version"] = record.weight_version;
  j["elapsed_s"] = record.elapsed_s;
  for (const auto& [key, value] : record.metrics) {
    if (std::isfinite(value))
      j[key] = value;
    else
      j[key] = nullptr;
  }
  return j.dump();
}

MetricsSink::MetricsSink(std::string path, Open mode) : path_(std::move(path)) {
  const int truncate = mode == Open::truncate ? O_TRUNC : 0;
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | truncate | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error("cannot write metrics to '" + path_ + "': " + std::strerror(errno));
}

MetricsSink::~MetricsSink() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsSink::write(const StepRecord& record) {
  const std::string line = to_json_line(record) + "\n";
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error("cannot write metrics to '" + path_ + "': " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  ::fdatasync(fd_);
}

}  // namespace qerl::runtime
