// Loading valid pipelines: typed values, defaults, derived values, stage
// order and inputs, positions, and the to_toml round trip.
#include <doctest/doctest.h>

#include <filesystem>
#include <set>

#include "dsl/loader.hpp"
#include "test_schema.hpp"

using namespace qerl::dsl;
namespace dsl = qerl::dsl;
namespace models = qerl::models;
namespace rl = qerl::rl;
namespace fs = std::filesystem;

namespace {

std::string data_path(const std::string& file) { return testing::test_dir() + "/data/" + file; }

const std::string minimal = "[model]\npath = \"/m\"\n[stages.d]\nuses = \"data\"\n";

}  // namespace

TEST_CASE("the full pipeline loads with every value typed as written") {
  Schema schema = testing::test_schema();
  PipelineSpec spec = load_pipeline(data_path("full.toml"), {}, schema);
  const fs::path dir = fs::absolute(testing::test_dir() + "/data").lexically_normal();

  CHECK(spec.plugins == std::vector<std::string>{(dir / "plugins/libextra.so").string()});
  CHECK(spec.run.name == "full");
  CHECK(spec.run.steps == 300);
  CHECK(spec.run.seed == 7);
  CHECK(spec.run.out_dir == "runs/full");
  CHECK(spec.run.checkpoint_every == 50);
  CHECK(spec.run.keep_checkpoints == 2);
  CHECK(spec.model.path == (dir / "models/tiny-moe").string());
  CHECK(spec.model.max_seq_len == 512);
  CHECK(spec.model.tokenizer.empty());
  CHECK(spec.data.prompts_per_step == 4);
  CHECK(spec.data.samples_per_prompt == 6);
  CHECK(spec.data.shuffle == false);
  CHECK(spec.data.max_prompt_len == 128);
  CHECK(spec.algorithm.norm_adv_by_std == false);
  CHECK(spec.algorithm.lr == 2e-6);
  CHECK(spec.algorithm.lr_schedule == rl::LrSchedule::cosine);
  CHECK(spec.algorithm.loss_agg == rl::LossAgg::seq_mean_token_mean);
  CHECK(spec.algorithm.kl_coef == 0.001);
  CHECK(spec.algorithm.kl_estimator == rl::KlEstimator::k1);
  CHECK(spec.algorithm.ppo_epochs == 2);
  CHECK(spec.algorithm.mini_batch_size == 12);
  CHECK(spec.algorithm.max_grad_norm == 0.5);
  CHECK(spec.algorithm.weight_decay == 0.0);  // default
  CHECK(spec.quantization.scheme == models::QuantScheme::nvfp4);
  CHECK(spec.quantization.group_size == 16);  // derived from the scheme
  CHECK(spec.quantization.train == dsl::QuantTrain::lora);
  CHECK(spec.quantization.ignore == std::vector<std::string>{"lm_head", "re:.*mlp\\.gate$"});
  CHECK(spec.lora.rank == 16);
  CHECK(spec.lora.alpha == 32.0);  // integer accepted for a float key
  CHECK(spec.lora.dropout == 0.05);
  CHECK(spec.lora.target_modules == std::vector<std::string>{"q_proj", "v_proj"});
  CHECK(spec.aqn.enabled);
  CHECK(spec.aqn.sigma_end == 5e-4);
  CHECK(spec.aqn.num_stages == 5);
  CHECK(spec.aqn.layer_types == std::vector<dsl::AqnLayerType>{dsl::AqnLayerType::rmsnorm, dsl::AqnLayerType::linear});
  CHECK(spec.aqn.apply_to == dsl::AqnApplyTo::both);
  CHECK(spec.aqn.targets == std::vector<std::string>{"re:.*norm$"});  // default
  CHECK(spec.router_replay.mode == rl::ReplayMode::r3);
  CHECK(spec.cluster.device == dsl::DeviceKind::cpu);
  CHECK(spec.cluster.num_gpus == 2);
  CHECK(spec.warnings.empty());

  REQUIRE(spec.stages.size() == 5);
  std::vector<std::string> order;
  for (const StageSpec& s : spec.stages) order.push_back(s.name);
  CHECK(order == std::vector<std::string>{"data", "rollout", "reward", "learner", "weight_sync"});

  const StageSpec* rollout = spec.find_stage("rollout");
  REQUIRE(rollout != nullptr);
  CHECK(rollout->uses == "rollout");
  CHECK(rollout->gpus == std::vector<int64_t>{0});
  CHECK(rollout->replicas == 2);
  CHECK(rollout->option<int64_t>("max_new_tokens") == 128);
  CHECK(rollout->option<double>("temperature") == 0.7);
  CHECK(rollout->pos.line == 71);
  REQUIRE(rollout->inputs.size() == 2);
  CHECK(rollout->inputs[0].port == "prompts");
  CHECK(rollout->inputs[0].from_stage == "data");
  CHECK(rollout->inputs[0].from_port == "prompts");
  CHECK_FALSE(rollout->inputs[0].staleness.has_value());
  CHECK(rollout->inputs[0].pos.line == 73);
  CHECK(rollout->inputs[0].pos.column == 22);
  CHECK(rollout->inputs[1].port == "weights");
  CHECK(rollout->inputs[1].from_stage == "weight_sync");
  CHECK(rollout->inputs[1].from_port == "weights");
  CHECK(rollout->inputs[1].staleness == std::optional<int64_t>(1));

  const StageSpec* learner = spec.find_stage("learner");
  REQUIRE(learner != nullptr);
  CHECK(learner->gpus == std::vector<int64_t>{1, 0});
  CHECK(learner->replicas == 1);
  CHECK(learner->option<int64_t>("grad_accum") == 1);  // default filled in
  REQUIRE(learner->inputs.size() == 2);
  CHECK(learner->inputs[1].port == "scores");
  CHECK(learner->inputs[1].from_stage == "reward");
  CHECK(learner->inputs[1].from_port.empty());  // "stage" alone

  CHECK(spec.find_stage("data")->option<int64_t>("prefetch") == 4);
  CHECK(spec.find_stage("reward")->option<double>("format_bonus") == 0.0);
  CHECK(spec.find_stage("weight_sync")->option<std::string>("format") == "nvfp4-packed");
  CHECK(spec.find_stage("weight_sync")->inputs.at(0).from_stage == "learner");
  CHECK(spec.find_stage("nope") == nullptr);
  CHECK_THROWS_AS(rollout->option<std::string>("max_new_tokens"), qerl::Error);
  CHECK_THROWS_AS(rollout->option<int64_t>("nope"), qerl::Error);
}

TEST_CASE("to_toml of the full pipeline loads back to an identical to_toml") {
  Schema schema = testing::test_schema();
  PipelineSpec spec = load_pipeline(data_path("full.toml"), {}, schema);
  const std::string first = to_toml(spec, schema);
  // Loaded from elsewhere (another name, another directory): nothing may
  // depend on where the resolved file lives.
  PipelineSpec again = load_pipeline_text(first, "elsewhere/resolved.toml", {}, schema);
  CHECK(to_toml(again, schema) == first);
  CHECK(again.model.path == spec.model.path);
  CHECK(again.plugins == spec.plugins);
  CHECK(again.stages.size() == spec.stages.size());
  CHECK(again.find_stage("rollout")->inputs.at(1).staleness == std::optional<int64_t>(1));
  CHECK(first.find("inputs = { prompts = \"data.prompts\", weights = { from = \"weight_sync.weights\", "
                   "staleness = 1 } }") != std::string::npos);
  CHECK(first.find("group_size = 16") != std::string::npos);
}

TEST_CASE("a minimal pipeline gets the documented defaults and derived values") {
  Schema schema = testing::test_schema();
  PipelineSpec spec = load_pipeline_text(minimal, "dir/my_run.toml", {}, schema);
  CHECK(spec.run.name == "my_run");
  CHECK(spec.run.out_dir == "runs/my_run");
  CHECK(spec.run.steps == 100);
  CHECK(spec.run.keep_checkpoints == 3);
  CHECK(spec.model.dtype == dsl::ModelDtype::bf16);
  CHECK(spec.model.max_seq_len == 1024);
  CHECK(spec.data.source == "builtin:arith");
  CHECK(spec.data.samples_per_prompt == 8);
  CHECK(spec.data.heldout_size == 200);
  CHECK(spec.algorithm.name == rl::Advantage::grpo);
  CHECK(spec.algorithm.lr == 1e-5);
  CHECK(spec.algorithm.clip_high == 0.28);
  CHECK(spec.algorithm.kl_estimator == rl::KlEstimator::k3);
  CHECK(spec.quantization.scheme == models::QuantScheme::none);
  CHECK(spec.quantization.mode == models::QuantMode::w4a16);
  CHECK(spec.quantization.group_size == 0);
  CHECK(spec.quantization.ignore.size() == 4);
  CHECK(spec.lora.rank == 0);
  CHECK(spec.lora.target_modules.size() == 7);
  CHECK(spec.aqn.sigma_start == 1e-2);
  CHECK(spec.aqn.sigma_end == 1e-4);
  CHECK(spec.aqn.apply_to == dsl::AqnApplyTo::rollout);
  CHECK(spec.router_replay.mode == rl::ReplayMode::disabled);
  CHECK(spec.cluster.device == dsl::DeviceKind::auto_detect);
  CHECK(spec.find_stage("d")->replicas == 1);
  CHECK(spec.find_stage("d")->gpus.empty());
  CHECK(spec.find_stage("d")->pos.line == 3);
  PipelineSpec mx = load_pipeline_text(minimal + "[quantization]\nscheme = \"mxfp4\"\n", "x.toml", {}, schema);
  CHECK(mx.quantization.group_size == 32);
}

TEST_CASE("every section key is bound to its own member (assign and read agree, no sharing)") {
  Schema schema = Schema::builtin();
  PipelineSpec spec;
  // Give every key a value distinct from all others, then read all back: two
  // keys writing one member would make one of the reads come back wrong.
  int64_t counter = 1000;
  std::vector<std::pair<const KeySpec*, Value>> written;
  for (const SectionSchema& section : schema.sections()) {
    for (const KeySpec& key : section.keys) {
      REQUIRE(key.assign);
      REQUIRE(key.read);
      const int64_t n = ++counter;
      Value v;
      switch (key.kind) {
        case ValueKind::boolean: v = (n % 2 == 0); break;
        case ValueKind::integer: v = n; break;
        case ValueKind::floating: v = static_cast<double>(n) + 0.5; break;
        // Keys with a fixed set of names (enum members) take one of them.
        case ValueKind::string:
          v = key.one_of.empty() ? "s" + std::to_string(n) : key.one_of[n % key.one_of.size()];
          break;
        case ValueKind::string_list:
          v = std::vector<std::string>{key.one_of.empty() ? "l" + std::to_string(n) : key.one_of[n % key.one_of.size()]};
          break;
        case ValueKind::integer_list: v = std::vector<int64_t>{n}; break;
      }
      key.assign(spec, v);
      written.emplace_back(&key, v);
    }
  }
  for (const auto& [key, v] : written) {
    CAPTURE(key->name);
    if (key->kind != ValueKind::boolean) CHECK(key->read(spec) == v);
  }
}

TEST_CASE("non-fatal findings come back as warnings, and the spec still loads") {
  Schema schema = testing::test_schema();
  PipelineSpec spec = load_pipeline_text(minimal + "[lora]\nalpha = 16\n[run]\nsteps = 5\ncheckpoint_every = 10\n",
                                         "w.toml", {}, schema);
  REQUIRE(spec.warnings.size() == 2);
  CHECK(spec.warnings[0].severity == Severity::warning);
  CHECK(spec.warnings[0].format().find("w.toml:5:2: warning: key 'lora'") == 0);
  CHECK(spec.warnings[1].key_path == "run.checkpoint_every");
}

TEST_CASE("a text pipeline under extends_root cannot extend a file outside it") {
  Schema schema = testing::test_schema();
  LoadOptions sandbox;
  sandbox.extends_root = testing::test_dir() + "/data";
  // Inside the root: fine.
  PipelineSpec spec = load_pipeline_text("extends = \"base.toml\"\n", "fuzz", {}, schema, sandbox);
  CHECK(spec.run.name == "base");
  for (const char* outside : {"../malformed/no_stages.toml", "/etc/passwd", "/dev/zero"}) {
    CAPTURE(outside);
    try {
      load_pipeline_text(std::string("extends = \"") + outside + "\"\n", "fuzz", {}, schema, sandbox);
      FAIL("expected a PipelineError");
    } catch (const PipelineError& e) {
      REQUIRE(e.diagnostics().size() == 1);
      CHECK(e.diagnostics()[0].message.find("lies outside") != std::string::npos);
    }
  }
}

TEST_CASE("a missing pipeline file is a PipelineError naming the file") {
  Schema schema = testing::test_schema();
  try {
    load_pipeline("/nonexistent/p.toml", {}, schema);
    FAIL("expected a PipelineError");
  } catch (const PipelineError& e) {
    CHECK(std::string(e.what()) == "/nonexistent/p.toml: error: cannot read pipeline: no such file");
  }
}

TEST_CASE("read_plugin_list resolves plugins against the naming file, --set replaces the list") {
  const fs::path dir = fs::absolute(testing::test_dir() + "/data").lexically_normal();
  CHECK(read_plugin_list(data_path("full.toml"), {}) ==
        std::vector<std::string>{(dir / "plugins/libextra.so").string()});
  // Other overrides are left for load_pipeline (plugin stage keys cannot be typed yet).
  const auto from_set = read_plugin_list(data_path("full.toml"),
                                         {"stages.x.y=1", "plugins=[\"a.so\", \"/abs/b.so\"]"});
  CHECK(from_set == std::vector<std::string>{(fs::current_path() / "a.so").lexically_normal().string(), "/abs/b.so"});
  CHECK(read_plugin_list(data_path("base.toml"), {}).empty());
  CHECK_THROWS_AS(read_plugin_list(data_path("full.toml"), {"plugins=3"}), PipelineError);
}
