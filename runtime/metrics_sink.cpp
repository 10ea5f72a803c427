// metrics.jsonl writing: nlohmann-json for the object, POSIX write() on an
// O_APPEND descriptor, and a failed write rolled back so no half line stays.
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

// A line is whole or absent: when a write fails part-way (disk full, file
// size limit), the file is cut back to where the line began.
void MetricsSink::write(const StepRecord& record) {
  const std::string line = to_json_line(record) + "\n";
  const off_t start = ::lseek(fd_, 0, SEEK_END);  // O_APPEND: the line goes here
  auto fail = [&](int err) {
    if (start >= 0 && ::ftruncate(fd_, start) == 0) ::fdatasync(fd_);
    throw Error("cannot write metrics to '" + path_ + "': " + std::strerror(err) +
                " (the step's line was not written)");
  };
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(errno);
    if (n == 0) fail(ENOSPC);
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(fd_) != 0 && errno != EINVAL) fail(errno);
}

}  // namespace qerl::runtime
