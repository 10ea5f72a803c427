// --explain and the reference page: every key, section and stage type is
// documented with type, default, allowed values and meaning; unknown names
// are errors with a suggestion.
#include <doctest/doctest.h>

#include "common/error.hpp"
#include "dsl/explain.hpp"
#include "test_schema.hpp"

using namespace qerl::dsl;

namespace {
bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("explain of a key gives type, default, range or allowed values, and meaning") {
  Schema schema = testing::test_schema();
  const std::string sigma = explain(schema, "aqn.sigma_end");
  CHECK(has(sigma, "aqn.sigma_end (float, default 1e-04; must be in [0, 1])"));
  CHECK(has(sigma, "Noise std at the last stage"));
  const std::string mode = explain(schema, "router_replay.mode");
  CHECK(has(mode, "one of 'disabled', 'R1', 'R2', 'R3'"));
  CHECK(has(explain(schema, "model.path"), "model.path (string, required)"));
  CHECK(has(explain(schema, "plugins"), "Shared libraries"));
  CHECK(has(explain(schema, "extends"), "arrays replace"));
}

TEST_CASE("explain of a section lists each of its keys") {
  Schema schema = testing::test_schema();
  const std::string aqn = explain(schema, "aqn");
  for (const KeySpec& k : schema.find_section("aqn")->keys) CHECK(has(aqn, "aqn." + k.name + " ("));
  const std::string overview = explain(schema, "");
  for (const SectionSchema& s : schema.sections()) CHECK(has(overview, "[" + s.name + "]"));
  for (const StageTypeSchema& t : schema.stage_types()) CHECK(has(overview, t.name));
  CHECK(has(explain(schema, "stages"), "stages.<name>.replicas (integer, default 1; must be >= 1)"));
}

TEST_CASE("explain of a stage type gives its ports, keys and device need") {
  Schema schema = testing::test_schema();
  const std::string rollout = explain(schema, "stages.rollout");
  CHECK(rollout == explain(schema, "rollout"));
  CHECK(has(rollout, "prompts (PromptBatch): what to answer"));
  CHECK(has(rollout, "samples (RolloutBatch)"));
  CHECK(has(rollout, "needs gpus"));
  CHECK(has(rollout, "max_new_tokens (integer, default 256; must be >= 1)"));
  CHECK(has(explain(schema, "learner"), "ref_logprobs (RefLogprobs, optional)"));
  CHECK(has(explain(schema, "stages.rollout.temperature"), "Sampling temperature"));
  CHECK(has(explain(schema, "stages.gpus"), "Logical GPU slots"));
}

TEST_CASE("explain of an unknown name throws with a suggestion") {
  Schema schema = testing::test_schema();
  CHECK_THROWS_WITH_AS(explain(schema, "aqn.sigma_ned"),
                       "--explain: unknown key 'aqn.sigma_ned' (did you mean 'aqn.sigma_end'?)", qerl::Error);
  CHECK_THROWS_WITH_AS(explain(schema, "rollot"), doctest::Contains("did you mean 'rollout'?"), qerl::Error);
  CHECK_THROWS_AS(explain(schema, "stages.nope.x"), qerl::Error);
}

TEST_CASE("reference_markdown documents every key of every section and every stage type") {
  Schema schema = testing::test_schema();
  const std::string md = reference_markdown(schema);
  CHECK(md == reference_markdown(schema));  // deterministic
  for (const SectionSchema& s : schema.sections()) {
    CHECK(has(md, "## [" + s.name + "]"));
    for (const KeySpec& k : s.keys) {
      CAPTURE(s.name + "." + k.name);
      CHECK(has(md, "| `" + k.name + "` | " + kind_name(k.kind) + " |"));
      CHECK(has(md, k.doc.substr(0, 20)));
    }
  }
  for (const KeySpec& k : schema.common_stage_keys()) CHECK(has(md, "| `" + k.name + "` |"));
  for (const StageTypeSchema& t : schema.stage_types()) {
    CHECK(has(md, "### Stage type `" + t.name + "`"));
    for (const PortSpec& p : t.inputs) CHECK(has(md, "| `" + p.name + "` | `" + p.type + "` |"));
  }
  CHECK(has(md, "| `path` | string | **required** |"));
}
