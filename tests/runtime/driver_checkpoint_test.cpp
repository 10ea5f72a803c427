// Checkpoints and resume through the driver, with the stateful toy stages:
// checkpoint folders appear after the right steps with a manifest and one
// folder per stage replica holding the state after exactly that step; the
// oldest are pruned; a failing stage never completes a checkpoint it is
// part of; and a run resumed from any checkpoint (of a finished or a failed
// run) writes the same metrics and the same final state as a run that was
// never interrupted, back-edges of staleness 0 and 1 included.
#include <doctest/doctest.h>

#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/checkpoint.hpp"
#include "tests/common/clocked_metric.hpp"
#include "tests/runtime/run_helpers.hpp"
#include "tests/runtime/stateful_stages.hpp"
#include "tests/runtime/test_spec.hpp"

using namespace qerl;
using namespace qerl::runtime;
using namespace qerl::runtime::testing;
namespace fs = std::filesystem;

namespace {

const char* const replica_dirs[] = {"counter", "acc", "relay", "sink", "sink.r1"};

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Complete checkpoints as steps_completed, oldest first.
std::vector<int64_t> complete_steps(const fs::path& out_dir) {
  std::vector<int64_t> out;
  for (const auto& c : list_checkpoints(out_dir)) out.push_back(c.steps_completed);
  return out;
}

// Every file of a checkpoint but the manifest, by relative path.
std::map<std::string, std::string> state_files(const fs::path& checkpoint) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(checkpoint))
    if (e.is_regular_file() && e.path().filename() != "manifest.json")
      out[fs::relative(e.path(), checkpoint).string()] = read(e.path());
  return out;
}

// A metrics line without what depends on the clock.
nlohmann::json timeless(nlohmann::json line) {
  for (auto it = line.begin(); it != line.end();)
    it = qerl::testing::clocked_metric(it.key()) ? line.erase(it) : std::next(it);
  return line;
}

std::vector<nlohmann::json> timeless_metrics(const fs::path& out_dir) {
  std::vector<nlohmann::json> out;
  for (auto& line : read_jsonl(out_dir / "metrics.jsonl")) out.push_back(timeless(line));
  return out;
}

struct Run {
  std::shared_ptr<StatefulToys> toys = std::make_shared<StatefulToys>();
  RunResult result;
};

Run run_toys(const dsl::PipelineSpec& spec, RunOptions options,
             const std::function<void(StatefulToys&)>& configure = {}) {
  Run r;
  if (configure) configure(*r.toys);
  StageRegistry registry;
  register_stateful_toys(registry, r.toys);
  r.result = run_spec(spec, registry, options);
  return r;
}

// The run resumed from `out_dir`'s newest checkpoint, as qerl-run --resume does.
Run resume(const dsl::PipelineSpec& spec, const fs::path& out_dir) {
  const auto checkpoint = latest_checkpoint(out_dir);
  REQUIRE(checkpoint);
  keep_metrics_before(out_dir / "metrics.jsonl", checkpoint->steps_completed);
  RunOptions options = quiet_options(out_dir.string());
  options.start_step = checkpoint->steps_completed;
  options.resume_from = checkpoint->dir.string();
  return run_toys(spec, options);
}

// The uninterrupted reference: 10 steps, a checkpoint after steps 3, 6, 9, 10.
const fs::path& reference_run() {
  static const fs::path dir = [] {
    const fs::path d = fresh_temp_dir("ckpt_reference");
    const Run r = run_toys(stateful_spec(10, 3), quiet_options(d.string()));
    REQUIRE_MESSAGE(r.result.ok, r.result.error);
    return d;
  }();
  return dir;
}

}  // namespace

TEST_CASE("checkpoints hold each replica's state after exactly their step, with a manifest") {
  const fs::path dir = reference_run();
  CHECK(complete_steps(dir) == std::vector<int64_t>{3, 6, 9, 10});
  const auto metrics = read_jsonl(dir / "metrics.jsonl");
  REQUIRE(metrics.size() == 10);
  for (int64_t n : {3, 6, 9, 10}) {
    CAPTURE(n);
    const fs::path c = checkpoint_dir(dir, n);
    const CheckpointManifest m = read_manifest(c);
    CHECK(m.steps_completed == n);
    CHECK(m.run == "test");
    CHECK(m.weight_version == metrics[n - 1]["weight_version"].get<int64_t>());
    CHECK(m.weight_version == n);  // acc's version after step n-1
    CHECK(std::abs(m.created_unix - static_cast<int64_t>(std::time(nullptr))) < 600);
    for (const char* r : replica_dirs) CHECK(fs::is_directory(c / r));
    // The source runs ahead of the other stages; its state is still the one after step n-1.
    CHECK(read(c / "counter" / "rng.txt") == counter_state_after(n, 4));
    // The accumulator's newest total is the one of step n-1.
    std::istringstream history(read(c / "acc" / "history.txt"));
    std::vector<double> before, last;
    for (auto* v : {&before, &last}) {
      size_t count = 0;
      history >> count;
      v->resize(count);
      for (double& x : *v) history >> x;
    }
    REQUIRE(last.size() == 4);
    CHECK((last[0] + last[1] + last[2] + last[3]) / 4 ==
          doctest::Approx(metrics[n - 1]["acc/mean"].get<double>()).epsilon(1e-12));
    CHECK(before.size() == 4);
    // The sink replicas' running sums average to the metric of step n-1.
    double a = 0, b = 0;
    std::istringstream(read(c / "sink" / "sum.txt")) >> a;
    std::istringstream(read(c / "sink.r1" / "sum.txt")) >> b;
    CHECK((a + b) / 2 == doctest::Approx(metrics[n - 1]["sink/sum"].get<double>()).epsilon(1e-12));
    CHECK(a != b);  // each replica saved its own shard's state
  }
  CHECK_FALSE(fs::exists(partial_checkpoint_dir(dir, 10)));
}

TEST_CASE("checkpoint_every: N-th steps plus the last; 0 or no run folder writes none") {
  struct Case {
    int64_t every, keep;
    std::vector<int64_t> expected;
  };
  for (const Case& c : {Case{4, 0, {4, 8, 10}}, Case{20, 0, {10}}, Case{3, 2, {9, 10}}, Case{1, 1, {10}}}) {
    CAPTURE(c.every);
    CAPTURE(c.keep);
    const fs::path dir = fresh_temp_dir("ckpt_every");
    const Run r = run_toys(stateful_spec(10, c.every, c.keep), quiet_options(dir.string()));
    REQUIRE_MESSAGE(r.result.ok, r.result.error);
    CHECK(complete_steps(dir) == c.expected);
    const auto entries = std::distance(fs::directory_iterator(checkpoints_folder(dir)), fs::directory_iterator{});
    CHECK(entries == static_cast<long>(c.expected.size()));  // pruned ones are gone, no .tmp left
  }
  const fs::path never = fresh_temp_dir("ckpt_never");
  const Run r0 = run_toys(stateful_spec(10, 0), quiet_options(never.string()));
  CHECK(r0.result.ok);
  CHECK(r0.toys->saves == 0);
  CHECK_FALSE(fs::exists(checkpoints_folder(never)));
  const Run no_dir = run_toys(stateful_spec(10, 3), quiet_options(""));
  CHECK(no_dir.result.ok);
  CHECK(no_dir.toys->saves == 0);
}

TEST_CASE("every replica's state is on disk when the driver hears of the step; metrics come first") {
  const fs::path dir = fresh_temp_dir("ckpt_order");
  RunOptions options = quiet_options(dir.string());
  std::vector<std::string> problems;
  int checked = 0;
  options.on_step = [&](const StepRecord& record) {
    if (!checkpoint_due(record.step, 3, 10)) return;
    ++checked;
    const fs::path partial = partial_checkpoint_dir(dir, record.step + 1);
    for (const char* r : replica_dirs)
      if (!fs::is_directory(partial / r)) problems.push_back(partial.string() + " lacks " + r);
    for (const char* f : {"counter/rng.txt", "acc/history.txt", "sink/sum.txt", "sink.r1/sum.txt"})
      if (!fs::exists(partial / f)) problems.push_back(partial.string() + " lacks " + f);
    if (fs::exists(checkpoint_dir(dir, record.step + 1))) problems.push_back("completed before on_step");
    if (read_jsonl(dir / "metrics.jsonl").size() != static_cast<size_t>(record.step + 1))
      problems.push_back("metrics line of step " + std::to_string(record.step) + " not written yet");
  };
  const Run r = run_toys(stateful_spec(10, 3), options);
  REQUIRE_MESSAGE(r.result.ok, r.result.error);
  CHECK(checked == 4);
  CHECK(problems.empty());
  CHECK(r.toys->saves == 4 * 5);
}

TEST_CASE("a stage that fails leaves the earlier checkpoints intact and completes none after") {
  SUBCASE("run() throws at step 8, which a checkpoint follows") {
    const fs::path dir = fresh_temp_dir("ckpt_fail_run");
    const Run r = run_toys(stateful_spec(10, 3), quiet_options(dir.string()), [](StatefulToys& t) {
      t.fail_stage = "acc";
      t.fail_run_at = 8;
    });
    CHECK_FALSE(r.result.ok);
    CHECK(r.result.error == "stage 'acc' (replica 0) failed at step 8: injected failure");
    CHECK(complete_steps(dir) == std::vector<int64_t>{3, 6});
    CHECK(fs::exists(partial_checkpoint_dir(dir, 9) / "counter" / "rng.txt"));  // the source got there
    CHECK_FALSE(fs::exists(checkpoint_dir(dir, 9)));
    for (int64_t n : {3, 6}) CHECK(state_files(checkpoint_dir(dir, n)) == state_files(checkpoint_dir(reference_run(), n)));
  }
  SUBCASE("save_state() of one replica throws after step 5") {
    const fs::path dir = fresh_temp_dir("ckpt_fail_save");
    const Run r = run_toys(stateful_spec(10, 3), quiet_options(dir.string()), [](StatefulToys& t) {
      t.fail_stage = "sink";
      t.fail_replica = 1;
      t.fail_save_at = 5;
    });
    CHECK_FALSE(r.result.ok);
    CHECK(r.result.error == "stage 'sink' (replica 1) failed saving its state after step 5: injected save failure");
    CHECK(complete_steps(dir) == std::vector<int64_t>{3});
    CHECK(state_files(checkpoint_dir(dir, 3)) == state_files(checkpoint_dir(reference_run(), 3)));
    CHECK(read_jsonl(dir / "metrics.jsonl").size() <= 5);  // step 5 never finished
  }
}

TEST_CASE("resuming from any checkpoint reproduces the uninterrupted run's metrics and state") {
  const fs::path ref = reference_run();
  const auto expected = timeless_metrics(ref);
  for (int64_t n : {3, 6, 9}) {
    CAPTURE(n);
    const fs::path dir = fresh_temp_dir("ckpt_resume_" + std::to_string(n));
    fs::copy(ref, dir, fs::copy_options::recursive);
    for (int64_t later : {6, 9, 10})  // as if the run had stopped right after checkpoint n
      if (later > n) fs::remove_all(checkpoint_dir(dir, later));
    if (n == 6) fs::remove_all(checkpoint_dir(dir, n) / "relay");  // saved nothing: recreated empty
    const Run r = resume(stateful_spec(10, 3), dir);
    REQUIRE_MESSAGE(r.result.ok, r.result.error);
    CHECK(r.result.steps_completed == 10);
    CHECK(r.toys->loads == 5);
    CHECK(timeless_metrics(dir) == expected);
    CHECK(state_files(checkpoint_dir(dir, 10)) == state_files(checkpoint_dir(ref, 10)));
    CHECK(fs::is_directory(checkpoint_dir(dir, n) / "relay"));
  }
}

TEST_CASE("a failed run resumed from its newest checkpoint ends as if it never failed") {
  const fs::path dir = fresh_temp_dir("ckpt_fail_resume");
  const Run failed = run_toys(stateful_spec(10, 3), quiet_options(dir.string()), [](StatefulToys& t) {
    t.fail_stage = "acc";
    t.fail_run_at = 8;
  });
  REQUIRE_FALSE(failed.result.ok);
  REQUIRE(fs::exists(partial_checkpoint_dir(dir, 9)));
  const Run resumed = resume(stateful_spec(10, 3), dir);
  REQUIRE_MESSAGE(resumed.result.ok, resumed.result.error);
  CHECK(timeless_metrics(dir) == timeless_metrics(reference_run()));
  CHECK(complete_steps(dir) == std::vector<int64_t>{3, 6, 9, 10});
  for (int64_t n : {9, 10}) CHECK(state_files(checkpoint_dir(dir, n)) == state_files(checkpoint_dir(reference_run(), n)));
}

TEST_CASE("a resumed run needs the checkpoint's state and a checkpoint that matches its start") {
  const fs::path ref = reference_run();
  SUBCASE("without load_state, back-edge messages from before the start are missing") {
    const fs::path dir = fresh_temp_dir("ckpt_no_state");
    RunOptions options = quiet_options(dir.string());
    options.start_step = 6;
    const Run r = run_toys(stateful_spec(10, 3), options);
    CHECK_FALSE(r.result.ok);
    CHECK(r.result.error ==
          "stage 'acc' (replica 0) failed at step 6: prev0 at step 6: the restored state lacks the total of step 5");
  }
  SUBCASE("a checkpoint of another step, or a start past the end, is refused before anything runs") {
    RunOptions options = quiet_options();
    options.start_step = 3;
    options.resume_from = checkpoint_dir(ref, 6).string();
    const Run r = run_toys(stateful_spec(10, 3), options);
    CHECK_FALSE(r.result.ok);
    CHECK(r.result.error.find("holds 6 steps, but the run would start at step 3") != std::string::npos);
    CHECK(r.toys->loads == 0);
    options.start_step = 11;
    options.resume_from.clear();
    CHECK(run_toys(stateful_spec(10, 3), options).result.error == "cannot start at step 11: run.steps is 10");
  }
  SUBCASE("a state file that cannot be loaded stops the run with the replica and its folder") {
    const fs::path dir = fresh_temp_dir("ckpt_bad_state");
    fs::copy(ref, dir, fs::copy_options::recursive);
    for (int64_t later : {9, 10}) fs::remove_all(checkpoint_dir(dir, later));
    const fs::path folder = checkpoint_dir(dir, 6) / "sink.r1";
    fs::remove(folder / "sum.txt");
    const Run r = resume(stateful_spec(10, 3), dir);
    CHECK_FALSE(r.result.ok);
    CHECK(r.result.error == "stage 'sink' (replica 1) failed loading its state from '" + folder.string() +
                                "': no state file " + (folder / "sum.txt").string());
    CHECK(r.result.steps_completed == 6);
    CHECK(complete_steps(dir) == std::vector<int64_t>{3, 6});  // the checkpoint stays
  }
  SUBCASE("a run resumed at its last step is already complete") {
    RunOptions options = quiet_options();
    options.start_step = 10;
    options.resume_from = checkpoint_dir(ref, 10).string();
    const Run r = run_toys(stateful_spec(10, 3), options);
    CHECK(r.result.ok);
    CHECK(r.result.steps_completed == 10);
    CHECK(r.toys->loads == 0);
  }
}
