// Running an executable under test as a child process: its exit status and
// what it printed, with stdout and stderr captured through files in a
// per-process scratch folder. Shared by the qerl-run and qerl-scan tests.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

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

}  // namespace qerl::test
