// Supervision: a stage that throws (qerl::Error, std::exception, anything;
// a multi-line message becomes one line), fails in setup, produces no output
// on a connected port, or cannot gather its producer replicas' parts stops
// the run with one line naming stage, replica and step; every actor is
// stopped and metrics.jsonl keeps only complete lines. A stalled graph is
// reported by the no-progress guard instead of hanging, even when a stage
// never returns.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>

#include "common/error.hpp"
#include "tests/runtime/run_helpers.hpp"
#include "tests/runtime/test_spec.hpp"
#include "tests/runtime/toy_loop.hpp"

using namespace qerl;
using namespace qerl::runtime;
using namespace qerl::runtime::testing;

namespace {

// A stage type built from lambdas, for one-off behaviours.
struct LambdaStage : Stage {
  std::function<void(const StageContext&)> on_setup;
  std::function<StepOutput(const StepInput&)> on_run;
  void setup(const StageContext& c) override {
    if (on_setup) on_setup(c);
  }
  StepOutput run(const StepInput& in) override { return on_run ? on_run(in) : StepOutput{}; }
};

StageType lambda_type(dsl::StageTypeSchema schema, std::function<void(LambdaStage&)> init) {
  return StageType{std::move(schema), [init] {
                     auto s = std::make_unique<LambdaStage>();
                     init(*s);
                     return s;
                   }};
}

StageType numbers_source(const std::string& name) {
  return lambda_type(type_schema(name, {}, {port("out", "X")}), [](LambdaStage& s) {
    s.on_run = [](const StepInput& in) {
      StepOutput out;
      out.ports["out"] = std::make_shared<Numbers>(std::vector<double>{double(in.step)});
      return out;
    };
  });
}

}  // namespace

TEST_CASE("a stage that throws at step 3 stops the run with one line; metrics stay whole") {
  struct Case {
    std::function<void()> raise;
    std::string what;
  };
  const std::vector<Case> cases = {
      {[] { throw Error("reward exploded"); }, "reward exploded"},
      {[] { throw std::runtime_error("bad_alloc-like"); }, "bad_alloc-like"},
      {[] { throw 42; }, "unknown exception"},
      {[] { throw Error("two problems:\nfirst\nsecond\n"); }, "two problems:; first; second"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    auto loop = std::make_shared<ToyLoop>();
    loop->hook = [&c](const std::string& stage, const StepInput& in) {
      if (stage == "reward" && in.step == 3) c.raise();
    };
    StageRegistry registry;
    register_toy_loop(registry, loop);
    const auto dir = fresh_temp_dir("throw");
    const RunResult result = run_spec(toy_loop_spec(6, 0), registry, quiet_options(dir.string()));
    CHECK_FALSE(result.ok);
    CHECK(result.error == "stage 'reward' (replica 0) failed at step 3: " + c.what);
    CHECK(result.steps_completed == 3);
    CHECK(live_toy_stages() == 0);  // all actors stopped, their stages destroyed
    bool ends_with_newline = false;
    const auto lines = read_jsonl(dir / "metrics.jsonl", &ends_with_newline);
    CHECK(ends_with_newline);
    REQUIRE(lines.size() == 3);
    for (int t = 0; t < 3; ++t) CHECK(lines[t]["step"] == t);
    CHECK(loop->log->index_of("learner", 3, true) == -1);  // nothing downstream ran step 3
  }
}

TEST_CASE("a failing setup() is reported before any step runs") {
  StageRegistry registry;
  registry.add(numbers_source("t.src"));
  registry.add(lambda_type(type_schema("t.model", {port("in", "X")}, {}), [](LambdaStage& s) {
    s.on_setup = [](const StageContext& c) {
      throw Error("cannot load model for " + c.stage->name + " on " + c.devices.at(0));
    };
  }));
  const auto spec = pipeline({stage("src", "t.src"), stage("model", "t.model", {input("in", "src")})});
  const RunResult result = run_spec(spec, registry, quiet_options());
  CHECK_FALSE(result.ok);
  CHECK(result.error == "stage 'model' (replica 0) failed in setup: cannot load model for model on cpu");
  CHECK(result.steps_completed == 0);
}

TEST_CASE("a stage must produce every connected output port") {
  StageRegistry registry;
  registry.add(lambda_type(type_schema("t.silent", {}, {port("out", "X")}), [](LambdaStage&) {}));
  registry.add(lambda_type(type_schema("t.sink", {port("in", "X")}, {}), [](LambdaStage&) {}));
  const auto spec = pipeline({stage("silent", "t.silent"), stage("sink", "t.sink", {input("in", "silent")})});
  const RunResult result = run_spec(spec, registry, quiet_options());
  CHECK_FALSE(result.ok);
  CHECK(result.error ==
        "stage 'silent' (replica 0) failed at step 0: it produced no message on output port 'out'");
}

TEST_CASE("a typed output port that carries another payload type stops the run, naming both types") {
  StageRegistry registry;
  dsl::PortSpec numbers_out = port("out", "Numbers");
  numbers_out.payload_type = payload_type<Numbers>();
  dsl::PortSpec numbers_in = port("in", "Numbers");
  numbers_in.payload_type = payload_type<Numbers>();
  registry.add(lambda_type(type_schema("t.liar", {}, {numbers_out}), [](LambdaStage& s) {
    s.on_run = [](const StepInput& in) {
      StepOutput out;
      if (in.step == 0) out.ports["out"] = std::make_shared<Numbers>(std::vector<double>{1});
      else out.ports["out"] = std::make_shared<Param>(0.0, in.step);  // declared Numbers, sends Param
      return out;
    };
  }));
  registry.add(lambda_type(type_schema("t.sink", {numbers_in}, {}), [](LambdaStage&) {}));
  const auto spec = pipeline({stage("liar", "t.liar"), stage("sink", "t.sink", {input("in", "liar")})});
  const RunResult result = run_spec(spec, registry, quiet_options());
  CHECK_FALSE(result.ok);
  CHECK(result.steps_completed == 1);
  CHECK(result.error == "stage 'liar' (replica 0) failed at step 1: it produced a qerl::runtime::testing::Param on "
                        "output port 'out', which is declared to carry qerl::runtime::testing::Numbers");
}

TEST_CASE("parts of a replicated producer whose payload cannot gather are a clear error") {
  StageRegistry registry;
  registry.add(lambda_type(type_schema("t.params", {}, {port("out", "X")}), [](LambdaStage& s) {
    s.on_run = [](const StepInput& in) {
      StepOutput out;
      out.ports["out"] = std::make_shared<Param>(1.0, in.step);
      return out;
    };
  }));
  registry.add(lambda_type(type_schema("t.sink", {port("in", "X")}, {}), [](LambdaStage&) {}));
  const auto spec = pipeline({stage("params", "t.params", {}, {}, /*replicas=*/2),
                              stage("sink", "t.sink", {input("in", "params")})});
  const RunResult result = run_spec(spec, registry, quiet_options());
  CHECK_FALSE(result.ok);
  CHECK(result.error.rfind("stage 'sink' (replica 0) failed at step 0: input 'in' from 'params.out': "
                           "payload type qerl::runtime::testing::Param cannot be gathered from 2 "
                           "producer replicas",
                           0) == 0);
}

TEST_CASE("an unimplemented stage type fails the run before any stage is constructed") {
  int constructed = 0;
  StageRegistry registry;
  registry.add(StageType{type_schema("t.src", {}, {port("out", "X")}), [&] {
                           ++constructed;
                           return std::make_unique<LambdaStage>();
                         }});
  registry.add(StageType{type_schema("t.later", {port("in", "X")}, {}), /*make=*/{}});
  const auto spec = pipeline({stage("src", "t.src"), stage("later", "t.later", {input("in", "src")})});
  const RunResult result = run_spec(spec, registry, quiet_options());
  CHECK_FALSE(result.ok);
  CHECK(result.error ==
        "stage 'later' uses stage type 't.later', which is declared but not implemented yet (only "
        "--dry-run can use it)");
  CHECK(constructed == 0);
}

TEST_CASE("a stalled stage is reported by the no-progress guard, not waited on forever") {
  // t.stuck never finishes a step by itself. Variant 1 polls stop_requested()
  // and returns when the run stops; variant 2 ignores it and is abandoned
  // after the shutdown timeout (released by the test afterwards).
  struct Gate {  // shared with the abandoned stage thread, which outlives this test
    std::mutex m;
    std::condition_variable cv;
    bool release = false;
  };
  auto gate = std::make_shared<Gate>();
  for (bool cooperative : {true, false}) {
    CAPTURE(cooperative);
    StageRegistry registry;
    registry.add(numbers_source("t.src"));
    registry.add(lambda_type(type_schema("t.stuck", {port("in", "X")}, {}), [gate, cooperative](LambdaStage& s) {
      auto ctx = std::make_shared<StageContext>();
      s.on_setup = [ctx](const StageContext& c) { *ctx = c; };
      s.on_run = [gate, ctx, cooperative](const StepInput&) {
        std::unique_lock<std::mutex> lock(gate->m);
        if (cooperative)
          while (!ctx->stop_requested()) gate->cv.wait_for(lock, std::chrono::milliseconds(5));
        else
          gate->cv.wait(lock, [&] { return gate->release; });
        return StepOutput{};
      };
    }));
    const auto spec = pipeline({stage("src", "t.src"), stage("stuck", "t.stuck", {input("in", "src")})});
    RunOptions options = quiet_options();
    // 3 s: long enough that the source has surely reported step 0 by then,
    // even on a loaded machine (the message would also name it otherwise).
    options.no_progress_timeout_s = 3.0;
    options.shutdown_timeout_s = 0.5;
    const auto start = std::chrono::steady_clock::now();
    const RunResult result = run_spec(spec, registry, options);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK_FALSE(result.ok);
    CHECK(result.error ==
          "no progress for 3 s: step 0 still waits on stuck (raise the no-progress timeout if a "
          "step is this slow)");
    CHECK(took < 20);
  }
  {
    std::lock_guard<std::mutex> lock(gate->m);
    gate->release = true;
  }
  gate->cv.notify_all();
}
