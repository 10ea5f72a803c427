// builtin:arith spec strings: each option lands in its field, format/parse
// round-trips, and every malformed spec is a qerl::Error that names the spec
// and the byte offset of the offending text (computed here with find()).
#include "tasks/arith_spec.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/error.hpp"
#include "tasks/counter_rng.hpp"

using qerl::tasks::ArithOptions;
using qerl::tasks::ArithSpec;
using qerl::tasks::format_arith_spec;
using qerl::tasks::parse_arith_spec;

namespace {

std::string error_of(const std::string& spec) {
  try {
    parse_arith_spec(spec);
  } catch (const qerl::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a bare builtin:arith spec gives the documented defaults") {
  const ArithSpec spec = parse_arith_spec("builtin:arith");
  CHECK(spec == ArithSpec{});
  CHECK(spec.options.min_steps == 2);
  CHECK(spec.options.max_steps == 4);
  CHECK(spec.size == 100000);
}

TEST_CASE("each option sets its own field and nothing else") {
  const ArithSpec spec = parse_arith_spec(
      "builtin:arith?steps=3-6&max_operand=50&max_value=900&max_factor=4&ops=+-*"
      "&negatives=true&templates=2&names=3&items=5&seed=77&size=1234");
  ArithSpec want;
  want.options.min_steps = 3;
  want.options.max_steps = 6;
  want.options.max_operand = 50;
  want.options.max_value = 900;
  want.options.max_factor = 4;
  want.options.ops = "+-*";
  want.options.allow_negative = true;
  want.options.templates = 2;
  want.options.names = 3;
  want.options.items = 5;
  want.seed = 77;
  want.size = 1234;
  CHECK(spec == want);

  const ArithSpec single = parse_arith_spec("builtin:arith?steps=3&negatives=0");
  CHECK(single.options.min_steps == 3);
  CHECK(single.options.max_steps == 3);
  CHECK_FALSE(single.options.allow_negative);
  CHECK(single.options.max_operand == ArithOptions{}.max_operand);
}

TEST_CASE("format_arith_spec and parse_arith_spec round-trip on random valid specs") {
  qerl::tasks::CounterRng rng(/*seed=*/42, /*stream=*/0);
  const std::vector<std::string> op_sets = {"+", "-", "*", "/", "+-", "*/", "+-*/", "-/"};
  for (int i = 0; i < 200; ++i) {
    ArithSpec spec;
    spec.options.min_steps = rng.in_range(1, 10);
    spec.options.max_steps = rng.in_range(spec.options.min_steps, 20);
    spec.options.max_operand = rng.in_range(1, 1000);
    spec.options.max_value = rng.in_range(spec.options.max_operand, 100000);
    spec.options.max_factor = rng.in_range(2, 12);
    spec.options.ops = op_sets[rng.below(op_sets.size())];
    spec.options.allow_negative = rng.below(2) == 1;
    spec.options.templates = rng.in_range(1, 3);
    spec.options.names = rng.in_range(1, 8);
    spec.options.items = rng.in_range(1, 8);
    spec.seed = rng.below(1000000000);
    spec.size = rng.in_range(1, 1000000);
    CAPTURE(format_arith_spec(spec));
    CHECK(parse_arith_spec(format_arith_spec(spec)) == spec);
  }
}

TEST_CASE("malformed specs name the spec and the byte offset of the problem") {
  struct Bad {
    std::string spec;
    std::string at;       // the text whose offset the error must name
    std::string message;  // a fragment the error must contain
  };
  const std::vector<Bad> cases = {
      {"builtin:arith?steps=2-4&colour=red", "colour", "unknown option 'colour'"},
      {"builtin:arith?max_operand=x1", "x1", "non-negative integer"},
      {"builtin:arith?max_operand=-5", "-5", "non-negative integer"},
      {"builtin:arith?steps=4-2", "4-2", "empty"},
      {"builtin:arith?steps=a-b", "a-b", "steps expects"},
      {"builtin:arith?ops=+-x", "x", "unknown operation 'x'"},
      {"builtin:arith?negatives=maybe", "maybe", "negatives expects"},
      {"builtin:arith?seed", "seed", "has no '='"},
      {"builtin:arith?steps=2&&seed=1", "&seed", "empty option"},
      {"builtin:arithmetic", "metic", "expected '?'"},
  };
  for (const Bad& c : cases) {
    CAPTURE(c.spec);
    const std::string error = error_of(c.spec);
    // "&seed": the empty option sits right after the first '&' of "&&".
    const size_t offset = c.at == "&seed" ? c.spec.find("&&") + 1 : c.spec.find(c.at);
    CHECK(error.find("'" + c.spec + "'") != std::string::npos);
    CHECK(error.find("byte " + std::to_string(offset) + ":") != std::string::npos);
    CHECK(error.find(c.message) != std::string::npos);
  }
}

TEST_CASE("out-of-range knobs are rejected with the knob's name") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"builtin:arith?steps=0", "min_steps"},
      {"builtin:arith?steps=1-65", "max_steps"},
      {"builtin:arith?max_operand=0", "max_operand"},
      {"builtin:arith?max_operand=50&max_value=20", "max_value"},
      {"builtin:arith?max_factor=1", "max_factor"},
      {"builtin:arith?templates=4", "templates"},
      {"builtin:arith?names=0", "names"},
      {"builtin:arith?items=9", "items"},
      {"builtin:arith?ops=", "ops is empty"},
      {"builtin:arith?size=0", "size"},
  };
  for (const auto& [spec, knob] : cases) {
    CAPTURE(spec);
    const std::string error = error_of(spec);
    CHECK(error.find(knob) != std::string::npos);
    CHECK(error.find(spec) != std::string::npos);
  }
}
