// The plugin API (runtime/plugin_api.hpp): key/ranged/... build the key
// specs the loader validates against, port<T> records the payload's C++
// type, and Graph::build refuses an edge whose ends carry different types —
// different classes, classes that merely share a name, or a typed port
// against one declared by name only — with one line naming both ends.
#include <doctest/doctest.h>

#include "common/error.hpp"
#include "dsl/diagnostic.hpp"
#include "runtime/graph.hpp"
#include "runtime/plugin_api.hpp"
#include "tests/runtime/plugins/text_payloads.hpp"
#include "tests/runtime/test_spec.hpp"

// A second class called TextBatch, as another plugin might define.
namespace lookalike {
struct TextBatch : qerl::runtime::Payload {};
}  // namespace lookalike

using namespace qerl;
using namespace qerl::runtime;
using namespace qerl::runtime::testing;
using testing_plugins::TextBatch;
using testing_plugins::TextScores;

namespace {

// The problems Graph::build reports for `spec` (none: empty).
std::vector<dsl::Diagnostic> problems_of(const dsl::PipelineSpec& spec, const StageRegistry& registry) {
  try {
    Graph::build(spec, registry);
  } catch (const dsl::PipelineError& e) {
    return e.diagnostics();
  }
  return {};
}

// A registry with a source "src" whose output `texts` is `out`, and a
// consumer "count" whose input `texts` is `in`.
struct OneEdge {
  StageRegistry registry;
  dsl::PipelineSpec spec;
  OneEdge(dsl::PortSpec out, dsl::PortSpec in) {
    out.name = in.name = "texts";
    registry.add(StageType{type_schema("test.src", {}, {out}), {}});
    registry.add(StageType{type_schema("test.count", {in}, {}), {}});
    spec = pipeline({stage("src", "test.src"), stage("count", "test.count", {input("texts", "src.texts")})});
  }
};

}  // namespace

TEST_CASE("key, ranged, at_least, choice and required_key fill the key spec the loader validates against") {
  const dsl::KeySpec k = ranged(key("tolerance", dsl::ValueKind::floating, 0.25, "Spread."), 0, 2);
  CHECK(k.name == "tolerance");
  CHECK(k.kind == dsl::ValueKind::floating);
  REQUIRE(k.default_value.has_value());
  CHECK(std::get<double>(*k.default_value) == 0.25);
  CHECK(k.doc == "Spread.");
  CHECK(*k.min == 0);
  CHECK(*k.max == 2);
  CHECK_FALSE(k.min_exclusive);

  const dsl::KeySpec c = choice(key("mode", dsl::ValueKind::string, std::string("a"), ""), {"a", "b"});
  CHECK(c.one_of == std::vector<std::string>{"a", "b"});
  CHECK_FALSE(c.min.has_value());

  const dsl::KeySpec r = required_key("path", dsl::ValueKind::string, "Where.");
  CHECK_FALSE(r.default_value.has_value());

  const dsl::KeySpec a = at_least(key("budget", dsl::ValueKind::integer, int64_t{64}, ""), 1);
  CHECK(*a.min == 1);
  CHECK_FALSE(a.max.has_value());
  CHECK(std::get<int64_t>(*a.default_value) == 64);
}

TEST_CASE("port<T> records the payload's C++ type and its short name") {
  const dsl::PortSpec p = port<TextBatch>("texts", "texts to score", /*optional=*/true);
  CHECK(p.name == "texts");
  CHECK(p.type == "TextBatch");
  CHECK(p.doc == "texts to score");
  CHECK(p.optional);
  REQUIRE(p.payload_type.has_value());
  CHECK(*p.payload_type == std::type_index(typeid(TextBatch)));
  CHECK(*p.payload_type != std::type_index(typeid(lookalike::TextBatch)));
  CHECK(demangled_name(*p.payload_type) == "qerl::testing_plugins::TextBatch");
}

TEST_CASE("ports of one C++ type connect; any other pairing is one error naming both ends") {
  SUBCASE("the same type") {
    OneEdge g(port<TextBatch>("", ""), port<TextBatch>("", ""));
    CHECK(problems_of(g.spec, g.registry).empty());
  }
  SUBCASE("name-only ports of one name (test doubles)") {
    OneEdge g(runtime::testing::port("", "TextBatch"), runtime::testing::port("", "TextBatch"));
    CHECK(problems_of(g.spec, g.registry).empty());
  }
  SUBCASE("different types") {
    OneEdge g(port<TextScores>("", ""), port<TextBatch>("", ""));
    const auto problems = problems_of(g.spec, g.registry);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].key_path == "stages.count.inputs.texts");
    CHECK(problems[0].pos.line == input_line(g.spec, "count", "texts"));
    CHECK(problems[0].message == "input port 'texts' expects TextBatch, 'src.texts' produces TextScores");
  }
  SUBCASE("two classes that share a name: the qualified names tell them apart") {
    OneEdge g(port<lookalike::TextBatch>("", ""), port<TextBatch>("", ""));
    const auto problems = problems_of(g.spec, g.registry);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].message ==
          "input port 'texts' expects qerl::testing_plugins::TextBatch, 'src.texts' produces lookalike::TextBatch");
  }
  SUBCASE("a typed port never matches a port declared by name only, even of the same name") {
    OneEdge g(runtime::testing::port("", "TextBatch"), port<TextBatch>("", ""));
    const auto problems = problems_of(g.spec, g.registry);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].message ==
          "input port 'texts' expects TextBatch, 'src.texts' produces TextBatch "
          "(declared by name only, not with port<T>())");
  }
}
