// Replicas: a replicated consumer gets one shard of each input per replica
// (rows split in order), a consumer of a replicated producer gets the parts
// gathered in replica order, and the loop's results equal the unreplicated
// reference. Step records average replica metrics.
#include <doctest/doctest.h>

#include "tests/runtime/run_helpers.hpp"
#include "tests/runtime/test_spec.hpp"
#include "tests/runtime/toy_loop.hpp"

using namespace qerl;
using namespace qerl::runtime;
using namespace qerl::runtime::testing;

TEST_CASE("reward x2 and reference x3 receive shards; the learner gets gathered payloads") {
  auto loop = std::make_shared<ToyLoop>();
  loop->rows = 6;
  StageRegistry registry;
  register_toy_loop(registry, loop);
  dsl::PipelineSpec spec = toy_loop_spec(/*steps=*/3, /*staleness=*/0);
  for (auto& s : spec.stages) {
    if (s.name == "reward") s.replicas = 2;
    if (s.name == "reference") s.replicas = 3;
  }
  const auto dir = fresh_temp_dir("replicas");
  const RunResult result = run_spec(spec, registry, quiet_options(dir.string()));
  REQUIRE_MESSAGE(result.ok, result.error);

  const ToyExpectation expected = simulate_toy_loop(3, 0, loop->rows, loop->seed);
  const auto events = loop->log->events();
  for (int64_t t = 0; t < 3; ++t) {
    CAPTURE(t);
    std::vector<double> reward_parts, reference_parts;
    for (const auto& e : events)
      if (e.begin && e.step == t && e.stage == "learner")
        CHECK(e.seen.size() == 6);  // its first port, ref_logprobs, gathered from 3 replicas
    for (int r = 0; r < 2; ++r)
      for (const auto& e : events)
        if (e.begin && e.step == t && e.stage == "reward" && e.replica == r) {
          CHECK(e.seen.size() == 3);
          reward_parts.insert(reward_parts.end(), e.seen.begin(), e.seen.end());
        }
    for (int r = 0; r < 3; ++r)
      for (const auto& e : events)
        if (e.begin && e.step == t && e.stage == "reference" && e.replica == r) {
          CHECK(e.seen.size() == 2);
          reference_parts.insert(reference_parts.end(), e.seen.begin(), e.seen.end());
        }
    // The shards, in replica order, are exactly rollout's samples.
    REQUIRE(reward_parts.size() == 6);
    REQUIRE(reference_parts.size() == 6);
    for (size_t i = 0; i < 6; ++i) {
      CHECK(reward_parts[i] == doctest::Approx(expected.samples[t][i]));
      CHECK(reference_parts[i] == doctest::Approx(expected.samples[t][i]));
    }
  }
  const auto lines = read_jsonl(dir / "metrics.jsonl");
  REQUIRE(lines.size() == 3);
  for (int64_t t = 0; t < 3; ++t) {
    CHECK(lines[t]["actor/param"].get<double>() == doctest::Approx(expected.param[t]));
    // two equal halves: the mean of the replicas' means is the batch mean
    CHECK(lines[t]["critic/rewards/mean"].get<double>() == doctest::Approx(expected.reward_mean[t]));
  }
}
