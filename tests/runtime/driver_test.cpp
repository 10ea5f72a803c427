// The driver runs the toy RL loop end to end: every stage sees its steps in
// order, values flow through all stages and match a sequential reference,
// rollout(t) uses exactly the weights of step t-1-staleness, metrics.jsonl
// gets one complete line per step, and the weights edge's staleness (and
// colocation) change the overlap of rollout and learner as designed.
#include <doctest/doctest.h>

#include "common/error.hpp"
#include "tests/runtime/run_helpers.hpp"
#include "tests/runtime/test_spec.hpp"
#include "tests/runtime/toy_loop.hpp"

using namespace qerl;
using namespace qerl::runtime;
using namespace qerl::runtime::testing;

namespace {

constexpr int64_t steps = 5;
const std::vector<std::string> loop_stages = {"data", "rollout", "reward", "reference", "learner",
                                              "weight_sync"};

std::vector<Event> events_of(const EventLog& log, const std::string& stage, bool begin) {
  std::vector<Event> out;
  for (const auto& e : log.events())
    if (e.stage == stage && e.begin == begin) out.push_back(e);
  return out;
}

// True when two run() intervals of the given stages were ever open at once.
bool any_overlap(const EventLog& log, const std::vector<std::string>& stages) {
  int open = 0;
  for (const auto& e : log.events()) {
    if (std::find(stages.begin(), stages.end(), e.stage) == stages.end()) continue;
    if (e.begin && open > 0) return true;
    open += e.begin ? 1 : -1;
  }
  return false;
}

}  // namespace

TEST_CASE("the toy RL loop runs N steps and its values match the sequential reference") {
  for (int64_t staleness : {0, 1, 2}) {
    CAPTURE(staleness);
    auto loop = std::make_shared<ToyLoop>();
    StageRegistry registry;
    register_toy_loop(registry, loop);
    const auto dir = fresh_temp_dir("loop" + std::to_string(staleness));
    RunOptions options = quiet_options(dir.string());
    std::vector<int64_t> reported;
    options.on_step = [&](const StepRecord& r) { reported.push_back(r.step); };

    const RunResult result = run_spec(toy_loop_spec(steps, staleness), registry, options);
    REQUIRE_MESSAGE(result.ok, result.error);
    CHECK(result.steps_completed == steps);
    CHECK(reported == std::vector<int64_t>{0, 1, 2, 3, 4});
    CHECK(live_toy_stages() == 0);  // every stage object was destroyed

    for (const auto& name : loop_stages) {  // each stage ran every step once, in order
      std::vector<int64_t> seen_steps;
      for (const auto& e : events_of(*loop->log, name, true)) seen_steps.push_back(e.step);
      CHECK_MESSAGE(seen_steps == reported, name);
    }
    const ToyExpectation expected = simulate_toy_loop(steps, staleness, loop->rows, loop->seed);
    const auto rollouts = events_of(*loop->log, "rollout", true);
    bool ends_with_newline = false;
    const auto lines = read_jsonl(dir / "metrics.jsonl", &ends_with_newline);
    CHECK(ends_with_newline);
    REQUIRE(lines.size() == steps);
    for (int64_t t = 0; t < steps; ++t) {
      CAPTURE(t);
      // rollout(t) reads the weights made at step t-1-k, whose version counts t-k updates.
      CHECK(rollouts[t].weights_step == expected.weights_step[t]);
      CHECK(rollouts[t].weight_version == (t - 1 - staleness >= 0 ? t - staleness : 0));
      CHECK(lines[t]["step"] == t);
      CHECK(lines[t]["weight_version"] == t + 1);  // the learner's update of step t
      CHECK(lines[t]["actor/param"].get<double>() == doctest::Approx(expected.param[t]));
      CHECK(lines[t]["critic/rewards/mean"].get<double>() == doctest::Approx(expected.reward_mean[t]));
      for (const auto& name : loop_stages) CHECK(lines[t].contains("timing_s/" + name));
    }
  }
}

TEST_CASE("staleness 0: rollout(t+1) never starts before weight_sync(t) ended") {
  auto loop = std::make_shared<ToyLoop>();
  StageRegistry registry;
  register_toy_loop(registry, loop);
  const RunResult result = run_spec(toy_loop_spec(steps, 0), registry, quiet_options());
  REQUIRE_MESSAGE(result.ok, result.error);
  for (int64_t t = 0; t + 1 < steps; ++t) {
    CAPTURE(t);
    const long sync_end = loop->log->index_of("weight_sync", t, false);
    const long next_rollout = loop->log->index_of("rollout", t + 1, true);
    REQUIRE(sync_end >= 0);
    CHECK(next_rollout > sync_end);
  }
}

TEST_CASE("staleness 1: rollout(t+1) starts while learner(t) is still running") {
  // learner(t) refuses to finish until rollout(t+1) has begun; that can only
  // happen when the weights edge lets rollout run one step ahead.
  auto run_with = [](int64_t staleness, double wait_s, std::shared_ptr<ToyLoop> loop) {
    loop->hook = [log = loop->log, wait_s](const std::string& stage, const StepInput& in) {
      if (stage != "learner" || in.step + 1 >= steps) return;
      if (!log->wait_for_begin("rollout", in.step + 1, wait_s))
        throw Error("rollout(" + std::to_string(in.step + 1) + ") did not start");
    };
    StageRegistry registry;
    register_toy_loop(registry, loop);
    return run_spec(toy_loop_spec(steps, staleness), registry, quiet_options());
  };
  auto loop = std::make_shared<ToyLoop>();
  const RunResult result = run_with(1, /*wait_s=*/30, loop);
  REQUIRE_MESSAGE(result.ok, result.error);
  for (int64_t t = 0; t + 1 < steps; ++t)
    CHECK(loop->log->index_of("rollout", t + 1, true) < loop->log->index_of("learner", t, false));

  // Control: with staleness 0 the same wait cannot succeed.
  const RunResult on_policy = run_with(0, /*wait_s=*/0.3, std::make_shared<ToyLoop>());
  CHECK_FALSE(on_policy.ok);
  CHECK(on_policy.error == "stage 'learner' (replica 0) failed at step 0: rollout(1) did not start");
}

TEST_CASE("colocated stages time-slice their slot; the same stages disaggregated overlap") {
  // With staleness 1 rollout(t+1) may run during learner(t). Each of the two
  // waits up to `wait_s` for the other to begin (a wait ends early when it
  // does), so on separate slots they must overlap whatever order the
  // scheduler picks: rollout(t+1) could otherwise finish before learner(t)
  // begins. On a shared slot the lease forbids the overlap and the waits
  // time out.
  auto run_placed = [](std::vector<int64_t> rollout, std::vector<int64_t> learner, double wait_s) {
    auto loop = std::make_shared<ToyLoop>();
    loop->hook = [log = loop->log, wait_s](const std::string& stage, const StepInput& in) {
      if (stage == "learner" && in.step + 1 < 4) log->wait_for_begin("rollout", in.step + 1, wait_s);
      if (stage == "rollout" && in.step >= 1) log->wait_for_begin("learner", in.step - 1, wait_s);
    };
    StageRegistry registry;
    register_toy_loop(registry, loop);
    dsl::PipelineSpec spec = toy_loop_spec(4, /*staleness=*/1);
    for (auto& s : spec.stages) {
      if (s.name == "rollout") s.gpus = rollout;
      if (s.name == "learner" || s.name == "reference") s.gpus = learner;
    }
    const RunResult result = run_spec(spec, registry, quiet_options());
    REQUIRE_MESSAGE(result.ok, result.error);
    return loop;
  };
  const auto colocated = run_placed({0}, {0}, /*wait_s=*/0.3);
  CHECK_FALSE(any_overlap(*colocated->log, {"rollout", "reference", "learner"}));
  const auto disaggregated = run_placed({0}, {1}, /*wait_s=*/30);
  CHECK(any_overlap(*disaggregated->log, {"rollout", "learner"}));
}
