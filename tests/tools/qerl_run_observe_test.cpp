// What qerl-run shows of a run as it goes: the progress line names each
// step's slowest stage, --log-level debug logs each stage's start and end of
// each step, and command.txt holds a command line that the shell reads back
// as the very arguments given (shell_quote on random bytes).
#include <doctest/doctest.h>

#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "run_tool.hpp"
#include "tools/command_line.hpp"

namespace fs = std::filesystem;
using qerl::test::Outcome;

namespace {

fs::path scratch(const std::string& name) { return qerl::test::scratch_dir("qerl_run_observe_test", name); }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST_CASE("--log-level debug: every stage logs its start, then its end, of every step; the progress line names the slowest stage") {
  const fs::path dir = scratch("debug_run");
  const std::string args = std::string(QERL_SOURCE_DIR) + "/tests/tools/data/toy_run.toml --out " + dir.string() +
                           "/run --set 'plugins=[\"" + QERL_TOY_PLUGIN + "\"]' --no-tensorboard --log-level debug";
  const Outcome o = qerl::test::run_tool(QERL_RUN_EXE, args, dir);
  INFO(o.err);
  REQUIRE(o.status == 0);
  const std::string all = o.out + o.err;
  for (const std::string stage : {"source", "square", "sink"})
    for (int step = 0; step < 6; ++step) {
      const std::string prefix = "[debug] " + stage + " step " + std::to_string(step);
      const size_t start = all.find(prefix + " start\n"), end = all.find(prefix + " end (");
      CHECK_MESSAGE(start != std::string::npos, prefix, " start");
      CHECK_MESSAGE((end != std::string::npos && end > start), prefix, " end, after its start");
    }
  int progress = 0;
  for (const std::string& line : lines_of(o.err))
    if (line.rfind("step ", 0) == 0) {
      ++progress;
      CHECK_MESSAGE(line.find(" | slowest ") != std::string::npos, line);
    }
  CHECK(progress == 6);
}

TEST_CASE("command.txt: the shell reads the quoted command line back as the same arguments") {
  const fs::path dir = scratch("quote");
  std::mt19937 rng(1919);
  std::uniform_int_distribution<int> byte(1, 255), length(0, 12);
  std::vector<std::string> args = {"printf", "%s\\n", "plain-arg_1.toml", "a b", "it's", "$HOME", "`x`", "*", ""};
  for (int i = 0; i < 20; ++i) {
    std::string a;
    for (int n = length(rng); n > 0; --n) {
      const char c = static_cast<char>(byte(rng));
      if (c != '\n') a += c;  // one argument per output line
    }
    args.push_back(a);
  }
  CHECK(qerl::tools::shell_quote("plain-arg_1.toml") == "plain-arg_1.toml");
  CHECK(qerl::tools::shell_quote("it's") == "'it'\\''s'");
  const Outcome o = qerl::test::run_tool("/bin/sh", "-c " + qerl::tools::shell_quote(qerl::tools::shell_command(args)), dir);
  REQUIRE(o.status == 0);
  const std::vector<std::string> echoed = lines_of(o.out);
  REQUIRE(echoed.size() == args.size() - 2);
  for (size_t i = 2; i < args.size(); ++i) CHECK(echoed[i - 2] == args[i]);
}
