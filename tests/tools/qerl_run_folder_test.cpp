// qerl-run and its run folder, end to end: one process owns a folder at a
// time (a second run or --resume of it is refused, naming the holder's pid),
// Ctrl-C stops a run saying where and how to resume, a run that failed
// before its first step does not block its folder, a step_<N> folder without
// manifest is not mistaken for a checkpoint, --dry-run writes nothing unless
// asked, and an unknown flag is a usage error (exit 2).
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "run_tool.hpp"

namespace fs = std::filesystem;

namespace {

using qerl::test::Outcome;
using qerl::test::slurp;

fs::path scratch(const std::string& name) { return qerl::test::scratch_dir("qerl_run_folder_test", name); }

Outcome qerl_run(const std::string& args, const fs::path& dir) {
  return qerl::test::run_tool(QERL_RUN_EXE, args, dir);
}

// toy_resume.toml (checkpoints after every 2 steps) into `out`.
std::string resume_args(const fs::path& out, const std::string& extra = "") {
  return std::string(QERL_SOURCE_DIR) + "/tests/tools/data/toy_resume.toml --out " + out.string() +
         " --set 'plugins=[\"" + QERL_TOY_PLUGIN + "\"]' " + extra;
}

size_t line_count(const fs::path& file) {
  std::ifstream in(file);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

// Polls `done` every 20 ms for up to 60 s.
template <class Pred>
bool eventually(Pred done) {
  for (int i = 0; i < 3000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::string checkpoint(const fs::path& run_dir, int steps) {
  std::string digits = std::to_string(steps);
  return (run_dir / "checkpoints" / ("step_" + std::string(6 - digits.size(), '0') + digits)).string();
}

}  // namespace

TEST_CASE("a run folder is owned by one qerl-run: a second run or --resume of it is refused with the holder's pid") {
  const fs::path dir = scratch("locked"), logs = scratch("locked_logs"), logs2 = scratch("locked_logs2");
  // Slow steps (300 ms x 12) keep the first run going while the others try.
  const pid_t first = qerl::test::spawn_tool(
      QERL_RUN_EXE, resume_args(dir, "--set run.steps=12 --set stages.square.sleep_ms=300"), logs);
  REQUIRE(eventually([&] { return line_count(dir / "metrics.jsonl") >= 2; }));
  const std::string holder = "(pid " + std::to_string(first) + ")";

  const Outcome resume = qerl_run("--resume " + dir.string() + " --set run.steps=14", logs2);
  CHECK(resume.status == 2);
  CHECK(resume.err == "qerl-run: error: run folder '" + dir.string() + "' is in use by another qerl-run " +
                          holder + "; wait for it to end or stop it\n");
  const Outcome overwrite = qerl_run(resume_args(dir, "--overwrite"), logs2);
  CHECK(overwrite.status == 2);
  CHECK(overwrite.err.find(holder) != std::string::npos);

  const Outcome done = qerl::test::wait_tool(first, logs);
  INFO(done.err);
  REQUIRE(done.status == 0);
  CHECK(line_count(dir / "metrics.jsonl") == 12);  // the refused runs changed nothing
  // Released with the process: the folder can be resumed now.
  const Outcome later = qerl_run("--resume " + dir.string() + " --set run.steps=13", logs2);
  INFO(later.err);
  CHECK(later.status == 0);
  CHECK(line_count(dir / "metrics.jsonl") == 13);
}

TEST_CASE("two --resume of one folder at once: exactly one runs, the metrics and checkpoints stay whole") {
  const fs::path dir = scratch("race"), a = scratch("race_a"), b = scratch("race_b");
  REQUIRE(qerl_run(resume_args(dir), a).status == 0);  // 7 steps
  const std::string more = "--resume " + dir.string() + " --set run.steps=12";
  // sleep_ms lives in resolved.toml: make the resumed steps slow by editing it.
  std::string resolved = slurp(dir / "resolved.toml");
  const auto at = resolved.find("sleep_ms = -1");
  REQUIRE(at != std::string::npos);
  resolved.replace(at, 13, "sleep_ms = 300");
  std::ofstream(dir / "resolved.toml") << resolved;
  const pid_t pa = qerl::test::spawn_tool(QERL_RUN_EXE, more, a);
  const pid_t pb = qerl::test::spawn_tool(QERL_RUN_EXE, more, b);
  const Outcome oa = qerl::test::wait_tool(pa, a), ob = qerl::test::wait_tool(pb, b);
  INFO(oa.err, ob.err);
  CHECK(((oa.status == 0 && ob.status == 2) || (oa.status == 2 && ob.status == 0)));
  const Outcome& refused = oa.status == 2 ? oa : ob;
  CHECK(refused.err.find("is in use by another qerl-run (pid ") != std::string::npos);
  std::ifstream in(dir / "metrics.jsonl");
  int expected_step = 0;
  for (std::string line; std::getline(in, line); ++expected_step)
    CHECK(line.find("{\"step\":" + std::to_string(expected_step) + ",") == 0);
  CHECK(expected_step == 12);
  CHECK(fs::exists(checkpoint(dir, 12) + "/manifest.json"));
  CHECK_FALSE(fs::exists(checkpoint(dir, 12) + ".tmp"));
}

TEST_CASE("Ctrl-C stops a run with one line: the step, the last complete checkpoint and the --resume command") {
  const fs::path dir = scratch("interrupt"), logs = scratch("interrupt_logs");
  const pid_t pid = qerl::test::spawn_tool(
      QERL_RUN_EXE, resume_args(dir, "--set run.steps=40 --set stages.square.sleep_ms=200"), logs);
  REQUIRE(eventually([&] { return fs::exists(checkpoint(dir, 4) + "/manifest.json"); }));
  ::kill(pid, SIGINT);
  const Outcome o = qerl::test::wait_tool(pid, logs);
  INFO(o.err);
  CHECK(o.status == 128 + SIGINT);
  const size_t steps = line_count(dir / "metrics.jsonl");
  CHECK(steps >= 4);
  CHECK(steps < 40);
  const int last = static_cast<int>(steps / 2 * 2);  // checkpoint_every = 2
  CHECK(o.err.find("qerl-run: interrupted after " + std::to_string(steps) + " of 40 steps") != std::string::npos);
  CHECK(o.err.find("last complete checkpoint: " + checkpoint(dir, last) + " (" + std::to_string(last) +
                   " steps); continue with: qerl-run --resume " + dir.string()) != std::string::npos);
  // What it says works.
  const Outcome resumed = qerl_run("--resume " + dir.string() + " --set run.steps=" + std::to_string(last + 1), logs);
  INFO(resumed.err);
  CHECK(resumed.status == 0);
  CHECK(line_count(dir / "metrics.jsonl") == static_cast<size_t>(last + 1));
}

TEST_CASE("a run that failed before its first step does not block its folder") {
  const fs::path dir = scratch("setup_failed"), logs = scratch("setup_failed_logs");
  const Outcome failed = qerl_run(resume_args(dir, "--set stages.square.fail_in_setup=1"), logs);
  CHECK(failed.status == 1);
  CHECK(failed.err.find("injected failure (fail_in_setup)") != std::string::npos);
  REQUIRE(fs::exists(dir / "resolved.toml"));

  const Outcome resume = qerl_run("--resume " + dir.string(), logs);
  CHECK(resume.status == 2);
  CHECK(resume.err == "qerl-run: error: cannot resume '" + dir.string() +
                          "': no step of it completed; run it again with: qerl-run " +
                          (dir / "resolved.toml").string() + " --out " + dir.string() + "\n");
  const Outcome again = qerl_run(resume_args(dir), logs);  // no --overwrite needed
  INFO(again.err);
  CHECK(again.status == 0);
  CHECK(line_count(dir / "metrics.jsonl") == 7);
  // Once a step is in, the folder holds a run.
  const Outcome third = qerl_run(resume_args(dir), logs);
  CHECK(third.status == 2);
  CHECK(third.err.find("already holds a run") != std::string::npos);
}

TEST_CASE("a step_<N> folder without manifest is no checkpoint: a resumed run passes step N") {
  const fs::path dir = scratch("no_manifest"), logs = scratch("no_manifest_logs");
  REQUIRE(qerl_run(resume_args(dir), logs).status == 0);  // checkpoints 6 and 7 kept
  fs::remove(checkpoint(dir, 7) + "/manifest.json");  // as if the commit of step 7 was cut short
  const Outcome resumed = qerl_run("--resume " + dir.string(), logs);
  INFO(resumed.err);
  CHECK(resumed.status == 0);
  CHECK((resumed.out + resumed.err).find("resuming run 'toy_resume' at step 6 of 7") != std::string::npos);
  CHECK(fs::exists(checkpoint(dir, 7) + "/manifest.json"));  // committed anew
  CHECK(line_count(dir / "metrics.jsonl") == 7);
}

TEST_CASE("--resume of a finished run says so on stderr, with how to make it longer") {
  const fs::path dir = scratch("finished"), logs = scratch("finished_logs");
  REQUIRE(qerl_run(resume_args(dir), logs).status == 0);
  const Outcome again = qerl_run("--resume " + dir.string(), logs);
  CHECK(again.status == 0);
  CHECK(again.err.find("run 'toy_resume' is already complete (7 of 7 steps); nothing to resume (to run it "
                       "longer: qerl-run --resume " + dir.string() + " --set run.steps=N)") != std::string::npos);
}

TEST_CASE("--dry-run writes nothing unless --dot asks for the graph") {
  const fs::path dir = scratch("dry"), logs = scratch("dry_logs");
  const fs::path out = dir / "never_made";
  const Outcome dry = qerl_run(resume_args(out, "--dry-run"), logs);
  INFO(dry.err);
  CHECK(dry.status == 0);
  CHECK_FALSE(fs::exists(out));
  const Outcome dot = qerl_run(resume_args(out, "--dry-run --dot " + (dir / "g.dot").string()), logs);
  CHECK(dot.status == 0);
  CHECK(slurp(dir / "g.dot").find("digraph") != std::string::npos);
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("an unknown flag is a usage error: exit 2 with CLI11's line") {
  const fs::path logs = scratch("flag");
  const Outcome o = qerl_run("--no-such-flag", logs);
  CHECK(o.status == 2);
  CHECK(o.err.find("--no-such-flag") != std::string::npos);
  CHECK(qerl_run("--help", logs).status == 0);
}
