// StepTracker: a step is complete only when every replica of every stage
// reported it; its record averages replica metrics, takes the slowest
// replica as timing_s/<stage>, the newest weight version, and lists who a
// stalled step still waits on.
#include <doctest/doctest.h>

#include "runtime/detail/step_tracker.hpp"
#include "runtime/graph.hpp"
#include "runtime/placement.hpp"
#include "runtime/stage_registry.hpp"
#include "tests/runtime/test_spec.hpp"

using namespace qerl::runtime;
using namespace qerl::runtime::testing;

TEST_CASE("step records aggregate replicas and come out in step order") {
  StageRegistry registry;
  registry.add(StageType{type_schema("t.src", {}, {port("out", "X")}), {}});
  registry.add(StageType{type_schema("t.sink", {port("in", "X")}, {}), {}});
  const auto spec = pipeline({stage("src", "t.src"), stage("sink", "t.sink", {input("in", "src")}, {}, 2)});
  const Graph graph = Graph::build(spec, registry);
  const Placement placement = place(spec, graph, registry, 0);
  StepTracker tracker(graph, placement, /*total_steps=*/3);

  tracker.record({0, 0, 0, 0.5, 0, {{"a", 1.0}}});
  tracker.record({1, 0, 0, 0.25, 2, {{"b", 3.0}}});
  tracker.record({1, 0, 1, 9.0, 0, {}});  // step 1 of sink[0] arrives early
  CHECK_FALSE(tracker.next_complete());
  CHECK(tracker.waiting_on() == std::vector<std::string>{"sink[1]"});
  tracker.record({1, 1, 0, 0.75, 1, {{"b", 5.0}}});
  REQUIRE(tracker.next_complete());
  const StepRecord r = tracker.take_next(/*elapsed_s=*/1.5);
  CHECK(r.step == 0);
  CHECK(r.total_steps == 3);
  CHECK(r.weight_version == 2);
  CHECK(r.elapsed_s == 1.5);
  CHECK(r.metrics.at("a") == 1.0);
  CHECK(r.metrics.at("b") == 4.0);  // mean of the replicas
  CHECK(r.metrics.at("timing_s/src") == 0.5);
  CHECK(r.metrics.at("timing_s/sink") == 0.75);  // slowest replica
  CHECK(tracker.next() == 1);
  CHECK_FALSE(tracker.next_complete());
  CHECK(tracker.waiting_on() == std::vector<std::string>{"src", "sink[1]"});
}
