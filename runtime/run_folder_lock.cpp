// RunFolderLock: flock(2) on a lock file in the run folder (released by the
// kernel with the descriptor, so a killed run never leaves a stale lock),
// plus the holder's pid in the file for the refusal message.
#include "runtime/run_folder_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "common/error.hpp"
#include "runtime/checkpoint.hpp"

namespace qerl::runtime {
namespace fs = std::filesystem;

namespace {

// The pid the holder wrote, or "unknown" (it may be writing it right now).
std::string holder_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  const bool digits = !pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos;
  return digits ? pid : "unknown";
}

}  // namespace

fs::path RunFolderLock::lock_file(const fs::path& run_dir) { return run_dir / ".qerl-run.lock"; }

RunFolderLock::RunFolderLock(const fs::path& run_dir) {
  const fs::path file = lock_file(run_dir);
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error("cannot lock run folder '" + run_dir.string() + "': cannot open " + file.string() + ": " +
                std::strerror(errno));
  int rc;
  do rc = ::flock(fd_, LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    const std::string pid = err == EWOULDBLOCK ? holder_pid(fd_) : "";
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw Error("run folder '" + run_dir.string() + "' is in use by another qerl-run (pid " + pid +
                  "); wait for it to end or stop it");
    throw Error("cannot lock run folder '" + run_dir.string() + "': " + std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw Error("cannot lock run folder '" + run_dir.string() + "': cannot write " + file.string() + ": " +
                std::strerror(err));
  }
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays (deleting it would race a new holder)
}

bool holds_completed_steps(const fs::path& run_dir) {
  if (!list_checkpoints(run_dir).empty()) return true;
  std::ifstream in(run_dir / "metrics.jsonl", std::ios::binary);
  for (std::string line; std::getline(in, line);)
    if (line.find_first_not_of(" \t\r") != std::string::npos) return true;
  return false;
}

}  // namespace qerl::runtime
