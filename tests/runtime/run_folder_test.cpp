// Run-folder files: atomic_write_file replaces a file whole (no temp file
// left behind), metrics.jsonl holds one parseable JSON object per line (also
// when the disk fills mid-line), one RunFolderLock per folder at a time, and
// which folders hold a run.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "common/error.hpp"
#include "runtime/checkpoint.hpp"
#include "runtime/metrics_sink.hpp"
#include "runtime/run_folder_lock.hpp"
#include "common/atomic_file.hpp"
#include "tests/runtime/test_spec.hpp"

using namespace qerl;
using namespace qerl::runtime;
namespace fs = std::filesystem;

namespace {
std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("atomic_write_file replaces the content whole and leaves no temp file") {
  const fs::path dir = testing::fresh_temp_dir("atomic");
  const fs::path file = dir / "resolved.toml";
  write_file_atomically(file, "a = 1\n");
  write_file_atomically(file, "b = 2\n");
  CHECK(read(file) == "b = 2\n");
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}) == 1);
  CHECK_THROWS_AS(write_file_atomically(dir / "missing" / "x.toml", "x"), Error);
}

TEST_CASE("metrics.jsonl: one JSON object per step, non-finite values as null") {
  const fs::path dir = testing::fresh_temp_dir("metrics");
  {
    MetricsSink sink((dir / "metrics.jsonl").string());
    StepRecord r;
    r.metrics = {{"critic/rewards/mean", 0.25}, {"timing_s/learner", 1.5}};
    sink.write(r);
    r.step = 1;
    r.weight_version = 1;
    r.metrics["critic/rewards/mean"] = std::nan("");
    sink.write(r);
  }
  std::ifstream in(dir / "metrics.jsonl");
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["step"] == 0);
  CHECK(lines[0]["critic/rewards/mean"] == 0.25);
  CHECK(lines[0]["timing_s/learner"] == 1.5);
  CHECK(lines[1]["weight_version"] == 1);
  CHECK(lines[1]["critic/rewards/mean"].is_null());
  CHECK_THROWS_AS(MetricsSink((dir / "no" / "metrics.jsonl").string()), Error);
}

TEST_CASE("a metrics line that does not fit on the disk is cut back off: only whole lines stay") {
  const fs::path dir = testing::fresh_temp_dir("metrics_full");
  const std::string path = (dir / "metrics.jsonl").string();
  StepRecord r;
  for (int i = 0; i < 40; ++i) r.metrics["metric/number_" + std::to_string(i)] = 0.125 * i;
  { MetricsSink(path).write(r); }
  const std::string whole = read(path);
  // A child process whose file size limit (RLIMIT_FSIZE) ends 100 bytes into
  // the second line: write(2) stores those 100 bytes, then fails (EFBIG),
  // exactly as on a disk that fills mid-line.
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlim_t limit = static_cast<rlim_t>(whole.size() + 100);
    const rlimit lim{limit, limit};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(3);
    try {
      MetricsSink sink(path, MetricsSink::Open::append);
      r.step = 1;
      sink.write(r);
    } catch (const Error& e) {
      ::_exit(std::string(e.what()).find("the step's line was not written") != std::string::npos ? 0 : 2);
    }
    ::_exit(1);  // the write did not fail
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(read(path) == whole);  // the 100 stray bytes are gone
}

TEST_CASE("RunFolderLock: one holder per folder, named in the refusal; released when dropped") {
  const fs::path dir = testing::fresh_temp_dir("run_lock");
  {
    RunFolderLock held(dir);
    CHECK(read(RunFolderLock::lock_file(dir)) == std::to_string(::getpid()) + "\n");
    try {
      RunFolderLock second(dir);  // another open file description: refused like another process
      FAIL("the folder was locked twice");
    } catch (const Error& e) {
      CHECK(std::string(e.what()) == "run folder '" + dir.string() + "' is in use by another qerl-run (pid " +
                                         std::to_string(::getpid()) + "); wait for it to end or stop it");
    }
  }
  CHECK_NOTHROW(RunFolderLock{dir});
  CHECK_THROWS_AS(RunFolderLock(dir / "missing"), Error);
}

TEST_CASE("a folder holds a run once a step finished: a metrics line or a complete checkpoint") {
  const fs::path dir = testing::fresh_temp_dir("holds_steps");
  CHECK_FALSE(holds_completed_steps(dir));
  std::ofstream(dir / "resolved.toml") << "[run]\n";
  std::ofstream(dir / "metrics.jsonl") << "\n  \n";  // a run that failed in setup
  fs::create_directories(partial_checkpoint_dir(dir, 2) / "learner");
  CHECK_FALSE(holds_completed_steps(dir));
  std::ofstream(dir / "metrics.jsonl") << "{\"step\":0}\n";
  CHECK(holds_completed_steps(dir));
  fs::remove(dir / "metrics.jsonl");
  fs::create_directories(checkpoint_dir(dir, 2));
  CHECK_FALSE(holds_completed_steps(dir));  // no manifest: not a checkpoint
  std::ofstream(checkpoint_dir(dir, 2) / "manifest.json") << "{}";
  CHECK(holds_completed_steps(dir));
}
