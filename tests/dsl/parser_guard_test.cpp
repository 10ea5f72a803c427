// The toml++ 3.3.0 guard: code points that would send toml++ into undefined
// behaviour are rejected with a position, while the same characters in
// strings and comments (where toml++ handles them) still load.
#include <doctest/doctest.h>

#include "dsl/detail/parser_guard.hpp"
#include "dsl/loader.hpp"
#include "test_schema.hpp"

using namespace qerl::dsl;
using qerl::dsl::detail::find_parser_hazards;
using qerl::dsl::detail::hits_toml_unreachable;

namespace {

const std::string tail = "\n[model]\npath = \"/m\"\n[stages.d]\nuses = \"data\"\n";

Diagnostic first_error(const std::string& text) {
  try {
    load_pipeline_text(text, "g.toml", {}, testing::test_schema());
  } catch (const PipelineError& e) {
    return e.diagnostics().at(0);
  }
  FAIL("expected a PipelineError");
  return {};
}

}  // namespace

TEST_CASE("hits_toml_unreachable flags the code points toml++ 3.3.0 mishandles, not its real whitespace") {
  for (char32_t c : {0xE9, 0xA7, 0x45B, 0x3001, 0x3002, 0x2C80}) CHECK(hits_toml_unreachable(c));
  // Whitespace it knows, ASCII, and code points outside the buggy blocks.
  for (char32_t c : {0x20, 0x41, 0xA0, 0x1680, 0x2000, 0x202F, 0x3000, 0xFEFF, 0x4E2D, 0x1F600})
    CHECK_FALSE(hits_toml_unreachable(c));
}

TEST_CASE("non-ASCII text in comments and strings loads unchanged") {
  Schema schema = testing::test_schema();
  const std::string text = "# café, 注释。\n[run]\nname = \"café。\" # ü\n[data]\nsource = '''\nþ\\é'''\n"
                           "[algorithm]\nloss_agg = \"\"\"token-mean\"\"\"\n" + tail;
  CHECK(find_parser_hazards(text).empty());
  PipelineSpec spec = load_pipeline_text(text, "u.toml", {}, schema);
  CHECK(spec.run.name == "café。");
}

TEST_CASE("a mishandled code point outside strings is a syntax error at its position") {
  const std::string text = "[run]\nsteps = 3\n[stagesé]\n" + tail;
  const auto hazards = find_parser_hazards(text);
  REQUIRE(hazards.size() == 1);
  const auto* hazard = &hazards.front();
  CHECK(hazard->line == 3);
  CHECK(hazard->column == 8);
  CHECK_FALSE(hazard->in_string);
  CHECK(first_error(text).format() ==
        "g.toml:3:8: error: TOML syntax: character U+00E9 is not allowed outside strings and comments");
}

TEST_CASE("after a backslash in a multi-line basic string the code point is rejected too") {
  Diagnostic escape = first_error("[run]\nname = \"\"\"ab\\é\"\"\"\n" + tail);
  CHECK(escape.pos.line == 2);
  CHECK(escape.pos.column == 14);
  CHECK(escape.message.find("U+00E9 right after a backslash") != std::string::npos);
  Diagnostic continuation = first_error("[run]\nname = \"\"\"ab\\\n   \n  §x\"\"\"\n" + tail);
  CHECK(continuation.pos.line == 4);
  CHECK(continuation.pos.column == 3);
}

TEST_CASE("an earlier TOML error is reported instead of a later mishandled code point") {
  Diagnostic d = first_error("[run]\nsteps = = 3\nné = 1\n" + tail);
  CHECK(d.pos.line == 2);
  CHECK(d.message.find("U+") == std::string::npos);
}

TEST_CASE("every mishandled code point is neutralized, not only the first (toml++ looks ahead)") {
  // Found by fuzz_pipeline: U+045C then U+045B inside a bare value; toml++'s
  // value lookahead classified the second after the first had been patched.
  const std::string text = "[stages.r]\ninputs = { samples = 4rollout.sa\u049D\u045C\u045B\u07F8 1 }\n";
  const auto hazards = find_parser_hazards(text);
  REQUIRE(hazards.size() == 2);
  CHECK(hazards[0].code_point == 0x45C);
  CHECK(hazards[1].code_point == 0x45B);
  CHECK(first_error(text + tail).pos.line == 2);  // a syntax error, and no undefined behaviour
}

TEST_CASE("a quote inside a bare value does not hide the code points after it") {
  // Found by fuzz_pipeline: toml++ scans `5'?)д` as one value, so the quote
  // opens no string and U+0434 after it must be neutralized.
  const std::string text = "[run]\ncheckpoint_every = 5'?)\xD0\xB4#x\n";
  const auto hazards = find_parser_hazards(text);
  REQUIRE(hazards.size() == 1);
  CHECK(hazards[0].code_point == 0x434);
  CHECK(first_error(text + tail).pos.line == 2);
  // A string that starts where a value starts still shields its contents.
  CHECK(find_parser_hazards("[run]\nname = '\xD0\xB4'\nx = [\"\xD0\xB4\", '\xD0\xB4']\n").empty());
}
