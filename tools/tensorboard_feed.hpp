// TensorBoardFeed: qerl-run's live TensorBoard logs. It starts the sidecar
// scripts/qerl_tensorboard.py (the project's python, TensorBoard's own
// writer) and sends it each finished step's metrics.jsonl line on its stdin,
// so `tensorboard --logdir <out>/tensorboard` shows the curves as the run
// goes. The run never waits on it: lines the sidecar has not taken yet are
// kept and sent later, and when the sidecar cannot start or stops (no
// python, no tensorboard) one warning line is printed and the run goes on.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

namespace qerl::tools {

struct TensorBoardFeedOptions {
  std::string python;  // the interpreter
  std::string script;  // scripts/qerl_tensorboard.py
  std::string log_dir;
  // The run's first step: TensorBoard drops the values of this step and
  // later ones from earlier event files in log_dir (a resume redoes them;
  // an --overwrite run replaces them all).
  std::optional<int64_t> purge_step;
};

// The project's python (QERL_PYTHON in the environment, else the one the
// build was configured with) and the sidecar script of this source tree.
TensorBoardFeedOptions default_tensorboard_feed(std::string log_dir);

class TensorBoardFeed {
 public:
  // Starts the sidecar; when it cannot start, one warning line goes to `warnings`.
  explicit TensorBoardFeed(TensorBoardFeedOptions options, std::ostream& warnings);
  ~TensorBoardFeed();  // close(), not waiting
  TensorBoardFeed(const TensorBoardFeed&) = delete;
  TensorBoardFeed& operator=(const TensorBoardFeed&) = delete;

  // One metrics.jsonl line (no newline). Never blocks, never throws.
  void write(const std::string& json_line);
  // Ends the sidecar's input and waits up to `timeout_s` for it to write
  // everything and exit (then stops it, with a warning).
  void close(double timeout_s);
  bool running() const { return socket_ >= 0; }
  const std::string& log_dir() const { return options_.log_dir; }

 private:
  bool send_pending(bool wait, double timeout_s);  // false: the sidecar is gone
  void stop(const std::string& why);               // closes the socket, reaps the sidecar
  void reap(double timeout_s, bool warn_if_stopped);

  TensorBoardFeedOptions options_;
  std::ostream& warnings_;
  int socket_ = -1;  // our end of the sidecar's stdin
  pid_t child_ = -1;
  std::string pending_;  // lines not yet taken by the sidecar
};

}  // namespace qerl::tools
