// extends and --set: precedence base < derived < --set, deep table merge,
// array replacement, positions from the file that provided a value, and the
// errors of malformed overrides.
#include <doctest/doctest.h>

#include <filesystem>

#include "dsl/loader.hpp"
#include "test_schema.hpp"

using namespace qerl::dsl;
namespace dsl = qerl::dsl;
namespace models = qerl::models;
namespace rl = qerl::rl;
namespace fs = std::filesystem;

namespace {

std::string data_path(const std::string& file) { return testing::test_dir() + "/data/" + file; }

// The one error a load must fail with.
Diagnostic only_error(const std::string& text, const Overrides& overrides, const Schema& schema) {
  try {
    load_pipeline_text(text, "t.toml", overrides, schema);
  } catch (const PipelineError& e) {
    std::vector<Diagnostic> errors;
    for (const Diagnostic& d : e.diagnostics())
      if (d.severity == Severity::error) errors.push_back(d);
    const std::string what = e.what();
      CAPTURE(what);
    REQUIRE(errors.size() == 1);
    return errors[0];
  }
  FAIL("expected a PipelineError");
  return {};
}

const std::string minimal = "[model]\npath = \"/m\"\n[stages.d]\nuses = \"data\"\n";

}  // namespace

TEST_CASE("derived values override the base, tables merge deeply, arrays replace") {
  Schema schema = testing::test_schema();
  PipelineSpec spec = load_pipeline(data_path("derived.toml"), {}, schema);
  const fs::path dir = fs::absolute(testing::test_dir() + "/data").lexically_normal();
  CHECK(spec.run.steps == 80);         // derived
  CHECK(spec.run.seed == 1);           // base, same table
  CHECK(spec.run.name == "base");      // base
  CHECK(spec.model.dtype == dsl::ModelDtype::fp16);   // derived
  CHECK(spec.model.max_seq_len == 2048);  // base
  CHECK(spec.model.path == (dir / "models/base-model").string());  // relative to base.toml
  CHECK(spec.aqn.targets == std::vector<std::string>{"re:.*norm$"});  // array replaced, not appended
  CHECK(spec.aqn.sigma_start == 0.02);  // base key kept beside the derived one
  CHECK(spec.quantization.ignore == std::vector<std::string>{"lm_head", "re:.*gate$"});
  REQUIRE(spec.stages.size() == 3);
  CHECK(spec.stages[0].name == "data");
  CHECK(spec.stages[1].name == "reward");
  CHECK(spec.stages[2].name == "weight_sync");  // new in derived: after the base's stages
  const StageSpec& reward = spec.stages[1];
  CHECK(reward.uses == "reward");                                 // from base
  CHECK(reward.option<double>("format_bonus") == 1.5);            // from derived
  CHECK(reward.inputs.at(0).from_stage == "data");                // from base
  CHECK(reward.pos.file.find("base.toml") != std::string::npos);  // declared in base
}

TEST_CASE("--set overrides both files, typed like the key it overrides") {
  Schema schema = testing::test_schema();
  PipelineSpec spec = load_pipeline(
      data_path("derived.toml"),
      {"run.steps=90", "model.dtype=fp32", "aqn.targets=[\"a\", \"b\"]", "algorithm.lr = 2e-6",
       "run.name=\"quoted name\"", "stages.reward.format_bonus=2", "stages.reward.inputs.samples=data",
       "stages.weight_sync.gpus=[0,1]", "aqn.enabled=true", "stages.weight_sync.format=lora-only",
       "stages.weight_sync.inputs={ params = { from = \"l.p\", staleness = 2 } }"},
      schema);
  CHECK(spec.run.steps == 90);
  CHECK(spec.model.dtype == dsl::ModelDtype::fp32);  // bare word for a string key
  CHECK(spec.aqn.targets == std::vector<std::string>{"a", "b"});
  CHECK(spec.algorithm.lr == 2e-6);
  CHECK(spec.run.name == "quoted name");
  CHECK(spec.aqn.enabled);  // a section only the override mentions... well, base has [aqn]
  const StageSpec* reward = spec.find_stage("reward");
  CHECK(reward->option<double>("format_bonus") == 2.0);  // integer accepted for a float key
  CHECK(reward->inputs.at(0).from_stage == "data");
  CHECK(reward->inputs.at(0).from_port.empty());
  CHECK(reward->inputs.at(0).pos.file == "<--set>");
  CHECK(reward->inputs.at(0).pos.line == 7);
  const StageSpec* sync = spec.find_stage("weight_sync");
  CHECK(sync->gpus == std::vector<int64_t>{0, 1});
  CHECK(sync->option<std::string>("format") == "lora-only");
  CHECK(sync->inputs.at(0).staleness == std::optional<int64_t>(2));
  // A section the file never mentions is created by the override.
  PipelineSpec fresh = load_pipeline_text(minimal, "t.toml", {"router_replay.mode=R2"}, schema);
  CHECK(fresh.router_replay.mode == rl::ReplayMode::r2);
}

TEST_CASE("an error in a value inherited from the base points into the base file") {
  Schema schema = testing::test_schema();
  // A schema where reward's format_bonus is an integer: base.toml's 0.5 is now wrong.
  Schema strict = Schema::builtin();
  for (StageTypeSchema t : schema.stage_types()) {
    if (t.name == "reward") t.keys[0].kind = ValueKind::integer, t.keys[0].default_value = Value(int64_t{0});
    strict.add_stage_type(t);
  }
  LoadOptions in_data;
  in_data.extends_root = testing::test_dir() + "/data";
  try {
    load_pipeline_text("extends = \"base.toml\"\n[run]\nsteps = 0\n", "top.toml", {}, strict, in_data);
    FAIL("expected a PipelineError");
  } catch (const PipelineError& e) {
    REQUIRE(e.diagnostics().size() == 2);
    CHECK(e.diagnostics()[0].format() == "top.toml:3:9: error: key 'run.steps': must be >= 1, got 0");
    CHECK(e.diagnostics()[1].pos.file.find("base.toml") != std::string::npos);
    CHECK(e.diagnostics()[1].pos.line == 24);
    CHECK(e.diagnostics()[1].message == "expected integer, got float 0.5");
  }
}

TEST_CASE("malformed --set overrides are errors at <--set>:index:col") {
  Schema schema = testing::test_schema();
  Diagnostic d = only_error(minimal, {"run.steps"}, schema);
  CHECK(d.format() == "<--set>:1:1: error: expected section.key=value, got 'run.steps'");

  d = only_error(minimal, {"run.steps=5", "algorithm.lrr=1e-6"}, schema);
  CHECK(d.format() == "<--set>:2:1: error: key 'algorithm.lrr': unknown key (did you mean 'algorithm.lr'?)");

  d = only_error(minimal, {"run.steps=abc"}, schema);
  CHECK(d.pos.column == 11);
  CHECK(d.message.find("expected integer, got 'abc'") == 0);

  d = only_error(minimal, {"run.steps=1.5"}, schema);
  CHECK(d.format() == "<--set>:1:11: error: key 'run.steps': expected integer, got float 1.5");

  d = only_error(minimal, {"run.steps=[1"}, schema);
  CHECK(d.message.find("not a TOML value") != std::string::npos);

  d = only_error(minimal, {"run.steps=1\n[evil]\nx=1"}, schema);  // one value, nothing else
  CHECK(d.message.find("not a TOML value") != std::string::npos);

  d = only_error(minimal, {"stages.dd.replicas=2"}, schema);
  CHECK(d.message == "no stage 'dd' to override (did you mean 'd'?)");

  d = only_error(minimal, {"stages.d.prefetsh=2"}, schema);
  CHECK(d.message.find("did you mean 'prefetch'?") != std::string::npos);

  d = only_error(minimal, {"quantization.scheme=nvfp5"}, schema);
  CHECK(d.format().find("<--set>:1:21: error: key 'quantization.scheme': must be one of") == 0);

  d = only_error(minimal, {"aqn.layer_types=rmsnorm"}, schema);  // a list key takes TOML only
  CHECK(d.message.find("expected list of strings") == 0);

  d = only_error(minimal, {"run..steps=1"}, schema);
  CHECK(d.message.find("malformed key path") == 0);
}

TEST_CASE("all bad overrides are reported together, in order") {
  Schema schema = testing::test_schema();
  try {
    load_pipeline_text(minimal, "t.toml", {"nope", "run.steps=0", "model.dtype=int8"}, schema);
    FAIL("expected a PipelineError");
  } catch (const PipelineError& e) {
    REQUIRE(e.diagnostics().size() == 3);
    CHECK(e.diagnostics()[0].pos.line == 1);
    CHECK(e.diagnostics()[1].pos.line == 2);
    CHECK(e.diagnostics()[2].pos.line == 3);
  }
}
