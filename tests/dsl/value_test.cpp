// Value spelling and suggestions: float literals read back bit-identical,
// strings are escaped so that TOML reads them back, and "did you mean"
// offers plausible typos only.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "dsl/loader.hpp"
#include "dsl/suggest.hpp"
#include "dsl/value.hpp"
#include "test_schema.hpp"

using namespace qerl::dsl;

TEST_CASE("to_toml_literal of random doubles parses back to the same bits") {
  std::mt19937_64 rng(12345);
  int tested = 0;
  while (tested < 20000) {
    uint64_t bits = rng();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (!std::isfinite(v)) continue;
    const std::string literal = to_toml_literal(Value(v));
    CAPTURE(literal);
    REQUIRE(literal.find_first_of(".e") != std::string::npos);  // a TOML float, not an integer
    const double back = std::strtod(literal.c_str(), nullptr);
    REQUIRE(std::memcmp(&back, &v, sizeof v) == 0);
    ++tested;
  }
  CHECK(to_toml_literal(Value(1.0)) == "1.0");
  CHECK(to_toml_literal(Value(1e-5)) == "1e-05");
}

TEST_CASE("random floats survive a load -> to_toml -> load round trip through toml++") {
  Schema schema = testing::test_schema();
  std::mt19937_64 rng(777);
  std::uniform_real_distribution<double> exponent(-12, 0);
  for (int i = 0; i < 200; ++i) {
    const double lr = std::pow(10.0, exponent(rng)) * 0.999;
    const std::string text = "[model]\npath = \"/m\"\n[algorithm]\nlr = " + to_toml_literal(Value(lr)) +
                             "\n[stages.d]\nuses = \"data\"\n";
    PipelineSpec first = load_pipeline_text(text, "a.toml", {}, schema);
    PipelineSpec second = load_pipeline_text(to_toml(first, schema), "a.toml", {}, schema);
    REQUIRE(second.algorithm.lr == lr);
  }
}

TEST_CASE("string literals escape quotes, backslashes and control characters") {
  CHECK(to_toml_literal(Value(std::string("a\"b\\c\n\x01"))) == "\"a\\\"b\\\\c\\n\\u0001\"");
  CHECK(to_toml_literal(Value(std::vector<std::string>{"x", "y"})) == "[\"x\", \"y\"]");
  CHECK(to_toml_literal(Value(std::vector<int64_t>{0, -3})) == "[0, -3]");
  // Read back through the loader: the escaped name is the original string.
  Schema schema = testing::test_schema();
  const std::string name = "we\"ird\\ \t name\x7f";
  PipelineSpec spec = load_pipeline_text("[run]\nname = " + to_toml_literal(Value(name)) +
                                             "\n[model]\npath = \"/m\"\n[stages.d]\nuses = \"data\"\n",
                                         "x.toml", {}, schema);
  CHECK(spec.run.name == name);
}

TEST_CASE("closest_match finds typos (including transpositions and case) and nothing far") {
  const std::vector<std::string> keys{"sigma_start", "sigma_end", "num_stages", "R3", "lr"};
  CHECK(closest_match("sigma_ned", keys) == std::optional<std::string>("sigma_end"));
  CHECK(closest_match("sigma_strat", keys) == std::optional<std::string>("sigma_start"));
  CHECK(closest_match("r3", keys) == std::optional<std::string>("R3"));
  CHECK(closest_match("lrr", keys) == std::optional<std::string>("lr"));
  CHECK_FALSE(closest_match("temperature", keys).has_value());
  CHECK(did_you_mean("num_stage", keys) == " (did you mean 'num_stages'?)");
  CHECK(did_you_mean("zzzzzz", keys).empty());
}

TEST_CASE("Diagnostic::format spells file:line:col, severity, key and message") {
  Diagnostic d{Severity::error, SourcePos{"p.toml", 3, 14}, "aqn.sigma_end", "must be > 0"};
  CHECK(d.format() == "p.toml:3:14: error: key 'aqn.sigma_end': must be > 0");
  Diagnostic w{Severity::warning, SourcePos{"p.toml", 0, 0}, "", "note"};
  CHECK(w.format() == "p.toml: warning: note");
  PipelineError e({w, d});
  CHECK(std::string(e.what()) == d.format() + "\n" + w.format());  // errors first
  CHECK(e.diagnostics().front().severity == Severity::error);
}
