// Starting, reaping and killing local worker processes; see local_workers.hpp.
#include "runtime/local_workers.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "common/error.hpp"
#include "runtime/cluster_secret.hpp"

extern char** environ;

namespace qerl::runtime {
namespace {

constexpr int port_report_timeout_ms = 60000;

// Reads "PORT\n" from `fd`; -1 when the child closed it first or time ran out.
int read_port(int fd) {
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(port_report_timeout_ms);
  while (text.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return -1;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return -1;
    char buf[32];
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) return -1;
    text.append(buf, static_cast<size_t>(n));
  }
  try {
    return std::stoi(text);
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace

LocalWorkers::LocalWorkers(const std::string& executable, int count, const std::string& secret,
                           const std::vector<std::string>& extra_args) {
  // The environment of the children: ours, with the secret replaced.
  std::vector<std::string> env_text;
  const std::string secret_prefix = std::string(secret_env) + "=";
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, secret_prefix.c_str(), secret_prefix.size()) != 0 &&
        std::strncmp(*e, "QERL_CLUSTER_SECRET_FILE=", 25) != 0)
      env_text.emplace_back(*e);
  env_text.push_back(secret_prefix + secret);
  std::vector<char*> envp;
  for (auto& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);
  try {
    for (int i = 0; i < count; ++i) {
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) != 0) throw Error("cannot create a pipe for local worker " + std::to_string(i + 1));
      std::vector<std::string> args = {executable, "--worker", "--listen", "0", "--port-fd", std::to_string(fds[1])};
      args.insert(args.end(), extra_args.begin(), extra_args.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      const pid_t parent = ::getpid();
      const pid_t pid = ::fork();
      if (pid < 0) throw Error("cannot fork local worker " + std::to_string(i + 1) + ": " + std::strerror(errno));
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(1);
        ::fcntl(fds[1], F_SETFD, 0);  // the port pipe survives exec
        ::execve(executable.c_str(), argv.data(), envp.data());
        ::_exit(127);
      }
      ::close(fds[1]);
      pids_.push_back(pid);
      const int port = read_port(fds[0]);
      ::close(fds[0]);
      if (port <= 0) {
        int status = 0;
        const bool exited = ::waitpid(pid, &status, WNOHANG) == pid;
        if (exited) pids_.pop_back();
        throw Error("local worker " + std::to_string(i + 1) + " (pid " + std::to_string(pid) + ", " + executable +
                    ") did not report its port" +
                    (exited ? " (it exited with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) + ")" : ""));
      }
      endpoints_.push_back(WorkerEndpoint{"127.0.0.1", port,
                                          "127.0.0.1:" + std::to_string(port) + ", pid " + std::to_string(pid)});
    }
  } catch (...) {
    stop_all();
    throw;
  }
}

LocalWorkers::~LocalWorkers() { stop_all(); }

// Workers leave by themselves once the coordinator says bye or is gone;
// after 5 s they are killed.
void LocalWorkers::stop_all() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (pid_t pid : pids_) {
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  pids_.clear();
}

}  // namespace qerl::runtime
