// Running an executable under test as a child process: its exit status and
// what it printed, with stdout and stderr captured through files in a
// per-process scratch folder. Shared by the qerl-run and qerl-scan tests.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace qerl::test {

struct Outcome {
  int status = -1;  // exit status; -1 if killed by a signal
  std::string out;
  std::string err;
};

inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// An empty folder <tmp>/<suite>_<pid>/<name>.
inline std::filesystem::path scratch_dir(const std::string& suite, const std::string& name) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / (suite + "_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Runs `exe args` (args already shell-quoted where needed), output into `dir`.
inline Outcome run_tool(const std::string& exe, const std::string& args, const std::filesystem::path& dir) {
  const auto out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd = exe + " " + args + " >" + out.string() + " 2>" + err.string();
  const int raw = std::system(cmd.c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(out), slurp(err)};
}

// Starts `exe args` (args shell-quoted) without waiting, output into `dir`;
// the returned pid is the tool's own (the shell execs it), for signals and
// wait_tool().
inline pid_t spawn_tool(const std::string& exe, const std::string& args, const std::filesystem::path& dir) {
  const std::string cmd = "exec " + exe + " " + args + " >" + (dir / "stdout.txt").string() + " 2>" +
                          (dir / "stderr.txt").string();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Waits for a spawn_tool() child. `status` is the exit status, or 128 + the
// signal that killed it.
inline Outcome wait_tool(pid_t pid, const std::filesystem::path& dir) {
  int raw = 0;
  while (::waitpid(pid, &raw, 0) < 0 && errno == EINTR) {
  }
  const int status = WIFEXITED(raw) ? WEXITSTATUS(raw) : WIFSIGNALED(raw) ? 128 + WTERMSIG(raw) : -1;
  return {status, slurp(dir / "stdout.txt"), slurp(dir / "stderr.txt")};
}

}  // namespace qerl::test
