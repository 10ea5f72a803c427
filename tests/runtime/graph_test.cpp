// Graph::build: edges resolve (default port = the only output), problems are
// all reported at once with the declaration's position — unknown producer
// with a suggestion, unknown / ambiguous port, type mismatch, unconnected
// required input, a cycle of forward edges — and a back-edge breaks a cycle.
#include <doctest/doctest.h>

#include "dsl/diagnostic.hpp"
#include "runtime/graph.hpp"
#include "runtime/stage_registry.hpp"
#include "tests/runtime/test_spec.hpp"
#include "tests/runtime/toy_loop.hpp"

using namespace qerl;
using namespace qerl::runtime;
using namespace qerl::runtime::testing;

namespace {

struct Fixture {
  StageRegistry registry;
  Fixture() {
    register_toy_loop(registry, std::make_shared<ToyLoop>());
    registry.add(StageType{type_schema("test.two_outputs", {},
                                       {port("prompts", "PromptBatch"), port("extra", "PromptBatch")}),
                           {}});
  }
};

std::vector<dsl::Diagnostic> problems_of(const dsl::PipelineSpec& spec, const StageRegistry& registry) {
  try {
    Graph::build(spec, registry);
  } catch (const dsl::PipelineError& e) {
    return e.diagnostics();
  }
  return {};
}

}  // namespace

TEST_CASE("the toy RL loop builds: back-edge weights, topological order, text and dot") {
  Fixture f;
  const dsl::PipelineSpec spec = toy_loop_spec(/*steps=*/3, /*staleness=*/1);
  const Graph g = Graph::build(spec, f.registry);
  REQUIRE(g.nodes().size() == 6);
  REQUIRE(g.edges().size() == 8);
  CHECK(g.max_staleness() == 1);

  std::vector<std::string> order;
  for (int v : g.topological_order()) order.push_back(g.node(v).name);
  CHECK(order == std::vector<std::string>{"data", "rollout", "reward", "reference", "learner",
                                          "weight_sync"});
  // weight_sync.params = "learner": the default port is the learner's only output.
  const Node& sync = g.node(*g.find("weight_sync"));
  REQUIRE(sync.inputs.size() == 1);
  CHECK(g.edges()[sync.inputs[0]].producer_port == "params");
  CHECK(g.node(*g.find("data")).is_source(g.edges()));
  CHECK_FALSE(g.node(*g.find("rollout")).is_source(g.edges()));

  const std::string text = g.to_text();
  CHECK(text.find("weights       <- weight_sync.weights     WeightsUpdate  (back-edge, staleness 1)") !=
        std::string::npos);
  const std::string dot = g.to_dot();
  CHECK(dot.find("\"weight_sync\" -> \"rollout\" [label=\"weights (staleness 1)\", style=dashed") !=
        std::string::npos);
  CHECK(dot.find("\"data\" -> \"rollout\" [label=\"prompts\"];") != std::string::npos);
}

TEST_CASE("an unknown producer is reported at the input with a did-you-mean") {
  Fixture f;
  dsl::PipelineSpec spec = toy_loop_spec(3, 0);
  spec.stages[2].inputs[0].from_stage = "rolout";
  const auto problems = problems_of(spec, f.registry);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].pos.line == input_line(spec, "reward", "samples"));
  CHECK(problems[0].key_path == "stages.reward.inputs.samples");
  CHECK(problems[0].message ==
        "unknown stage 'rolout' in \"rolout.samples\" (did you mean 'rollout'?)");
}

TEST_CASE("port problems: unknown port, ambiguous default port, type mismatch, unconnected input") {
  Fixture f;
  dsl::PipelineSpec spec = pipeline(
      {stage("two", "test.two_outputs"),
       stage("rollout", "toy.rollout", {input("prompts", "two")}),                   // ambiguous
       stage("reward", "toy.reward", {input("samples", "rollout.sample")}),          // typo
       stage("reference", "toy.reference", {input("samples", "two.prompts")}),       // mismatch
       stage("learner", "toy.learner", {input("samples", "rollout.samples")})});     // 2 missing
  const auto problems = problems_of(spec, f.registry);
  REQUIRE(problems.size() == 5);  // every problem at once
  CHECK(problems[0].message ==
        "stage 'two' has several output ports (prompts, extra): name one, e.g. \"two.prompts\"");
  CHECK(problems[0].pos.line == input_line(spec, "rollout", "prompts"));
  CHECK(problems[1].message ==
        "stage 'rollout' (type 'toy.rollout') has no output port 'sample' (did you mean 'samples'?)");
  CHECK(problems[2].message ==
        "input port 'samples' expects RolloutBatch, 'two.prompts' produces PromptBatch");
  CHECK(problems[2].key_path == "stages.reference.inputs.samples");
  CHECK(problems[3].message == "input port 'scores' (Scores) of stage 'learner' is not connected");
  CHECK(problems[3].pos.line == stage_line(spec, "learner"));
  CHECK(problems[4].message ==
        "input port 'ref_logprobs' (RefLogprobs) of stage 'learner' is not connected");
}

TEST_CASE("a cycle of forward edges is an error naming the cycle; a back-edge makes it legal") {
  Fixture f;
  dsl::PipelineSpec spec = toy_loop_spec(3, 0);
  spec.stages[1].inputs[1].staleness.reset();  // weights is now a forward edge
  const auto problems = problems_of(spec, f.registry);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].message.rfind(
            "cycle without a back-edge: rollout -> learner -> weight_sync -> rollout; give one "
            "input on it a staleness, e.g. weights = { from = \"weight_sync.weights\", staleness = 0 }",
            0) == 0);
  CHECK(problems[0].pos.line == input_line(spec, "rollout", "weights"));

  spec.stages[1].inputs[1].staleness = 0;
  CHECK_NOTHROW(Graph::build(spec, f.registry));
}

TEST_CASE("a stage reading its own output needs a back-edge too") {
  StageRegistry registry;
  registry.add(StageType{type_schema("test.loop", {port("state", "S")}, {port("state", "S")}), {}});
  dsl::PipelineSpec spec = pipeline({stage("solo", "test.loop", {input("state", "solo.state")})});
  const auto problems = problems_of(spec, registry);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].message.find("solo -> solo") != std::string::npos);
  spec.stages[0].inputs[0].staleness = 2;
  const Graph g = Graph::build(spec, registry);
  CHECK(g.node(0).is_source(g.edges()));  // only a back-edge in: the driver ticks it
}

TEST_CASE("an unknown stage type is reported with a suggestion") {
  Fixture f;
  dsl::PipelineSpec spec = toy_loop_spec(3, 0);
  spec.stages[3].uses = "toy.referense";
  const auto problems = problems_of(spec, f.registry);
  REQUIRE(problems.size() >= 1);
  CHECK(problems[0].message == "unknown stage type 'toy.referense' (did you mean 'toy.reference'?)");
  CHECK(problems[0].key_path == "stages.reference.uses");
}
