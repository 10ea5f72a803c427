// StageRegistry: names are unique, the schema lists every type, and a
// pipeline using a declared-but-unimplemented type is refused before any
// stage is spawned, with one line naming stage and type.
#include <doctest/doctest.h>

#include "common/error.hpp"
#include "runtime/driver.hpp"
#include "runtime/stage_registry.hpp"
#include "tests/runtime/test_spec.hpp"
#include "tests/runtime/toy_loop.hpp"

using namespace qerl;
using namespace qerl::runtime;
using namespace qerl::runtime::testing;

TEST_CASE("a stage type name can be registered once; the schema carries every type") {
  StageRegistry registry;
  registry.add(StageType{type_schema("a.one", {}, {port("out", "T")}), {}});
  registry.add(StageType{type_schema("b.two", {port("in", "T")}, {}), {}});
  CHECK_THROWS_WITH_AS(registry.add(StageType{type_schema("a.one", {}, {}), {}}),
                       "stage type 'a.one' is registered twice", Error);
  REQUIRE(registry.find("a.one"));
  CHECK(registry.find("a.one")->schema.outputs.at(0).type == "T");
  CHECK_FALSE(registry.find("a.on"));
  CHECK(registry.names() == std::vector<std::string>{"a.one", "b.two"});
  const dsl::Schema schema = registry.schema();
  CHECK(schema.find_stage_type("a.one"));
  CHECK(schema.find_stage_type("b.two"));
}

TEST_CASE("a run refuses declared-but-unimplemented stage types before spawning anything") {
  StageRegistry registry;
  auto loop = std::make_shared<ToyLoop>();
  register_toy_loop(registry, loop);
  registry.add(StageType{type_schema("future.reward", {port("samples", "RolloutBatch")},
                                     {port("scores", "Scores")}),
                         /*make=*/{}});
  dsl::PipelineSpec spec = toy_loop_spec(/*steps=*/2, /*staleness=*/0);
  CHECK_NOTHROW(check_implemented(spec, registry));
  spec.stages[2].uses = "future.reward";
  CHECK_THROWS_WITH_AS(check_implemented(spec, registry),
                       "stage 'reward' uses stage type 'future.reward', which is declared but not "
                       "implemented yet (only --dry-run can use it)",
                       Error);
  spec.stages[3].uses = "future.reward";
  CHECK_THROWS_WITH_AS(check_implemented(spec, registry),
                       "stages 'reward' (future.reward), 'reference' (future.reward) use stage "
                       "types that are declared but not implemented yet (only --dry-run can use them)",
                       Error);
}
