// TensorBoardFeed: the sidecar is spawned (posix_spawn) with one end of a
// Unix socket pair as its stdin; ours is non-blocking and written with
// MSG_NOSIGNAL, so a sidecar that died costs an error code, not a SIGPIPE.
#include "tools/tensorboard_feed.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

extern char** environ;

namespace qerl::tools {
namespace {

// The sidecar's "cannot import the writer / cannot write there" exit: it
// printed the warning line itself.
constexpr int sidecar_warned_exit = 3;
// Lines kept for a sidecar that falls behind, before giving up on it.
constexpr size_t max_pending_bytes = 64u << 20;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "stopped";
}

}  // namespace

TensorBoardFeedOptions default_tensorboard_feed(std::string log_dir) {
  TensorBoardFeedOptions options;
  const char* python = std::getenv("QERL_PYTHON");
  options.python = python && *python ? python : QERL_PYTHON;
  options.script = std::string(QERL_SOURCE_DIR) + "/scripts/qerl_tensorboard.py";
  options.log_dir = std::move(log_dir);
  return options;
}

TensorBoardFeed::TensorBoardFeed(TensorBoardFeedOptions options, std::ostream& warnings)
    : options_(std::move(options)), warnings_(warnings) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    warnings_ << "qerl-run: warning: no TensorBoard logs: socketpair: " << std::strerror(errno) << "\n";
    return;
  }
  // The sidecar's stdin is fds[1] (dup2 clears close-on-exec on fd 0 only).
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDIN_FILENO);
  std::vector<std::string> args = {options_.python, options_.script, options_.log_dir};
  if (options_.purge_step) args.insert(args.end(), {"--purge-step", std::to_string(*options_.purge_step)});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int err = ::posix_spawnp(&pid, options_.python.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (err != 0) {
    ::close(fds[0]);
    warnings_ << "qerl-run: warning: no TensorBoard logs: cannot start '" << options_.python
              << "': " << std::strerror(err) << " (set QERL_PYTHON, or pass --no-tensorboard)\n";
    return;
  }
  child_ = pid;
  socket_ = fds[0];
  ::fcntl(socket_, F_SETFL, ::fcntl(socket_, F_GETFL) | O_NONBLOCK);
  const int buffer = 1 << 20;  // a few hundred steps' lines while the sidecar starts
  ::setsockopt(socket_, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
}

TensorBoardFeed::~TensorBoardFeed() {
  if (socket_ >= 0) ::close(socket_);  // the sidecar reads EOF, writes what it has and exits
  if (child_ > 0) ::waitpid(child_, nullptr, WNOHANG);
}

void TensorBoardFeed::write(const std::string& json_line) {
  if (socket_ < 0) return;
  pending_ += json_line;
  pending_ += '\n';
  if (!send_pending(/*wait=*/false, 0)) return;
  if (pending_.size() > max_pending_bytes)
    stop("the TensorBoard writer fell " + std::to_string(pending_.size() >> 20) + " MiB behind");
}

// Sends what the socket takes; with `wait`, until all is sent or the timeout.
bool TensorBoardFeed::send_pending(bool wait, double timeout_s) {
  const auto start = Clock::now();
  while (!pending_.empty()) {
    const ssize_t n = ::send(socket_, pending_.data(), pending_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      pending_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const double left = timeout_s - seconds_since(start);
      if (!wait || left <= 0) return true;
      pollfd p{socket_, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(left * 1000) + 1);
      continue;
    }
    stop("");  // EPIPE / ECONNRESET: the sidecar is gone; reap() says why
    return false;
  }
  return true;
}

void TensorBoardFeed::close(double timeout_s) {
  if (socket_ < 0) return;
  const auto start = Clock::now();
  if (!send_pending(/*wait=*/true, timeout_s)) return;
  if (!pending_.empty()) {
    stop("the TensorBoard writer did not take the last steps within " + std::to_string(int(timeout_s)) + " s");
    return;
  }
  ::close(socket_);
  socket_ = -1;
  reap(timeout_s - seconds_since(start), /*warn_if_stopped=*/true);
}

void TensorBoardFeed::stop(const std::string& why) {
  if (!why.empty())
    warnings_ << "qerl-run: warning: " << why << "; no more TensorBoard logs in " << options_.log_dir << "\n";
  if (socket_ >= 0) ::close(socket_);
  socket_ = -1;
  pending_.clear();
  reap(why.empty() ? 10 : 0, /*warn_if_stopped=*/why.empty());
}

// Waits for the sidecar; one that outlives the timeout is stopped. Its exit
// is reported unless it was clean or the sidecar printed its own warning.
void TensorBoardFeed::reap(double timeout_s, bool warn_if_stopped) {
  if (child_ <= 0) return;
  const auto start = Clock::now();
  int status = 0;
  pid_t done = 0;
  while ((done = ::waitpid(child_, &status, WNOHANG)) == 0 && seconds_since(start) < timeout_s)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (done == 0) {
    ::kill(child_, SIGTERM);
    ::waitpid(child_, &status, 0);
    if (warn_if_stopped)
      warnings_ << "qerl-run: warning: the TensorBoard writer (pid " << child_ << ") was still busy after "
              << std::max(0, static_cast<int>(timeout_s)) << " s and was stopped; " << options_.log_dir
              << " may lack the last steps\n";
  } else if (done > 0 && !(WIFEXITED(status) && (WEXITSTATUS(status) == 0 ||
                                                  WEXITSTATUS(status) == sidecar_warned_exit))) {
    warnings_ << "qerl-run: warning: the TensorBoard writer " << describe(status) << "; "
              << options_.log_dir << " may lack steps\n";
  }
  child_ = -1;
}

}  // namespace qerl::tools
