// RunFolderLock: one process owns a run folder at a time. qerl-run takes an
// exclusive flock(2) on <out_dir>/.qerl-run.lock before it writes anything
// there and holds it for the life of the run; the kernel releases it when the
// process ends, however it ends. A second qerl-run on the same folder (two
// --resume of one run, say) is refused with one line naming the holder's pid.
#pragma once

#include <filesystem>

namespace qerl::runtime {

class RunFolderLock {
 public:
  // Locks `run_dir` (which must exist) and writes this process's pid into
  // the lock file. Throws qerl::Error naming the folder and the holder's pid
  // when another process holds it, or the file cannot be made.
  explicit RunFolderLock(const std::filesystem::path& run_dir);
  ~RunFolderLock();
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

  static std::filesystem::path lock_file(const std::filesystem::path& run_dir);  // <dir>/.qerl-run.lock

 private:
  int fd_ = -1;
};

// Whether `run_dir` holds the result of at least one finished step: a
// non-blank line in metrics.jsonl, or a complete checkpoint. A folder left by
// a run that failed before its first step (resolved.toml, an empty
// metrics.jsonl, .tmp checkpoints) holds none and may be run into again.
bool holds_completed_steps(const std::filesystem::path& run_dir);

}  // namespace qerl::runtime
