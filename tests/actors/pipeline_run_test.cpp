// Real runs of the built-in stages on a tiny random MoE (char-level
// tokenizer, builtin:arith prompts): the RL loop produces its metrics and
// samples with the newest weights, sampler and learner log-probs agree in
// fp32, SFT lowers its loss, a resumed run reproduces the uninterrupted one,
// a reward plugin loaded from .so takes reward.arith's place, and a stage
// that throws leaves the last checkpoint intact.
#include <doctest/doctest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "actors/builtin_stages.hpp"
#include "actors/payloads.hpp"
#include "dsl/loader.hpp"
#include "models/nn/weights.hpp"
#include "models/tokenizer/char_level.hpp"
#include "runtime/driver.hpp"
#include "runtime/graph.hpp"
#include "runtime/placement.hpp"
#include "runtime/plugin_loader.hpp"
#include "runtime/stage_registry.hpp"
#include "tests/actors/quiet_log.hpp"
#include "tests/common/clocked_metric.hpp"

namespace fs = std::filesystem;
using namespace qerl;
using nlohmann::json;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("qerl_actors_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A tiny qwen3_moe (hidden 32, 2 layers, 4 experts top-2) with the char-level
// tokenizer, written as an HF folder once per test process.
const fs::path& tiny_model_dir() {
  static const fs::path dir = [] {
    const fs::path d = fresh_dir("model");
    const json config{{"model_type", "qwen3_moe"}, {"vocab_size", 257}, {"hidden_size", 32},
                      {"intermediate_size", 64}, {"moe_intermediate_size", 32}, {"num_hidden_layers", 2},
                      {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 8},
                      {"num_experts", 4}, {"num_experts_per_tok", 2}, {"norm_topk_prob", true},
                      {"max_position_embeddings", 512}, {"initializer_range", 0.05}, {"eos_token_id", 256},
                      {"pad_token_id", 256}, {"tie_word_embeddings", false}, {"dtype", "float32"}};
    models::CausalLM lm(models::parse_model_config(config));
    models::init_weights(*lm, /*seed=*/11);
    models::save_causal_lm(d, *lm);
    std::ofstream(d / "tokenizer.json") << models::char_level_tokenizer_json({"<|endoftext|>"});
    std::ofstream(d / "tokenizer_config.json") << R"({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"})";
    return d;
  }();
  return dir;
}

// The RL pipeline of grpo_tiny.toml, shrunk: 4 prompts x 4 samples, short
// responses, reference + KL on, eval every 2 steps on 8 held-out problems.
std::string rl_pipeline(const std::string& reward = "reward.arith", const std::string& reward_keys = "") {
  return R"(
[run]
name = "t"
steps = 3
seed = 5
[model]
path = ")" + tiny_model_dir().string() + R"("
dtype = "fp32"
max_seq_len = 256
[data]
source = "builtin:arith?steps=2-2&max_operand=9&ops=+-"
prompts_per_step = 4
samples_per_prompt = 4
heldout_size = 8
[algorithm]
lr = 1e-3
kl_coef = 0.01
mini_batch_size = 8
ppo_epochs = 2
[stages.data]
uses = "data"
[stages.rollout]
uses = "rollout"
gpus = [0]
inputs = { prompts = "data.prompts", weights = { from = "weight_sync.weights", staleness = 0 } }
max_new_tokens = 12
[stages.reward]
uses = ")" + reward + R"("
inputs = { samples = "rollout.samples" }
)" + reward_keys + R"(
[stages.reference]
uses = "reference"
gpus = [0]
inputs = { samples = "rollout.samples" }
[stages.learner]
uses = "learner"
gpus = [0]
micro_batch_size = 3
inputs = { samples = "rollout.samples", scores = "reward.scores", ref_logprobs = "reference.ref_logprobs" }
[stages.weight_sync]
uses = "weight_sync"
inputs = { params = "learner.params" }
[stages.eval]
uses = "eval"
gpus = [0]
inputs = { weights = "weight_sync.weights" }
every = 2
max_new_tokens = 12
)";
}

struct Run {
  runtime::RunResult result;
  std::vector<json> metrics;
};

// Loads `toml` (written to <dir>/pipeline.toml) with `overrides` and runs it
// into `dir` through the runtime (as qerl-run does, minus the CLI).
Run run_pipeline_text(const fs::path& dir, const std::string& toml, const std::vector<std::string>& overrides = {},
                      runtime::StageRegistry* registry_in = nullptr, int64_t start_step = 0,
                      const std::string& resume_from = "") {
  std::ofstream(dir / "pipeline.toml") << toml;
  runtime::StageRegistry local;
  runtime::StageRegistry& registry = registry_in ? *registry_in : local;
  if (!registry.find("learner")) actors::register_builtin_stages(registry);
  const dsl::PipelineSpec spec = dsl::load_pipeline((dir / "pipeline.toml").string(), overrides, registry.schema());
  const runtime::Graph graph = runtime::Graph::build(spec, registry);
  const runtime::Placement placement = runtime::place(spec, graph, registry, /*physical_gpus=*/0);
  runtime::RunOptions options;
  options.out_dir = dir.string();
  actors::testing::silence_stage_logs(options);
  options.no_progress_timeout_s = 300;
  options.start_step = start_step;
  options.resume_from = resume_from;
  Run run;
  run.result = runtime::run_pipeline(spec, graph, placement, registry, options);
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) run.metrics.push_back(json::parse(line));
  return run;
}

bool finite_number(const json& line, const std::string& key) {
  return line.contains(key) && line[key].is_number() && std::isfinite(line[key].get<double>());
}

// A metrics line without what legitimately differs between runs.
json without_timing(json line) {
  for (auto it = line.begin(); it != line.end();) {
    if (qerl::testing::clocked_metric(it.key()))
      it = line.erase(it);
    else
      ++it;
  }
  return line;
}

// Rewards drawn from a generator seeded by the step (so a resumed run draws
// what the uninterrupted one did): a random tiny model answers nothing
// right, and all-zero rewards would give zero advantages and no update.
// Throws at step `fail_at` (-1 = never).
class SeededReward final : public runtime::Stage {
 public:
  explicit SeededReward(int64_t fail_at) : fail_at_(fail_at) {}
  runtime::StepOutput run(const runtime::StepInput& input) override {
    if (input.step == fail_at_) throw Error("injected failure");
    const auto samples = input.get<actors::RolloutBatch>("samples");
    auto scores = std::make_shared<actors::Scores>();
    auto gen = at::make_generator<at::CPUGeneratorImpl>(/*seed=*/1000 + input.step);
    scores->rewards = torch::bernoulli(torch::full({samples->size()}, 0.5), gen);
    scores->correct.assign(samples->size(), 0);
    scores->formatted.assign(samples->size(), 0);
    runtime::StepOutput out;
    out.metrics["critic/rewards/mean"] = scores->rewards.mean().item<double>();
    out.ports["scores"] = scores;
    return out;
  }

 private:
  int64_t fail_at_;
};

// The built-in stages plus test.seeded_reward and test.failing_reward (at step 3).
runtime::StageRegistry& test_registry() {
  static runtime::StageRegistry registry;
  static const bool filled = [] {
    actors::register_builtin_stages(registry);
    dsl::StageTypeSchema schema = registry.find("reward.arith")->schema;
    schema.keys.clear();
    schema.name = "test.seeded_reward";
    registry.add(runtime::StageType{schema, [] { return std::make_unique<SeededReward>(-1); }});
    schema.name = "test.failing_reward";
    registry.add(runtime::StageType{schema, [] { return std::make_unique<SeededReward>(3); }});
    return true;
  }();
  (void)filled;
  return registry;
}

}  // namespace

TEST_CASE("a 3-step GRPO run writes the RL metrics; rollout samples with the newest weights") {
  const fs::path dir = fresh_dir("rl");
  const Run run = run_pipeline_text(dir, rl_pipeline("test.seeded_reward"), {}, &test_registry());
  REQUIRE_MESSAGE(run.result.ok, run.result.error);
  REQUIRE(run.metrics.size() == 3);
  for (const std::string key : {"critic/rewards/mean", "actor/pg_loss", "actor/entropy",
                          "actor/grad_norm", "actor/pg_clipfrac", "actor/ppo_kl", "actor/kl_loss", "actor/lr",
                          "rollout_corr/kl", "response_length/mean", "response_length/clip_ratio",
                          "rollout/tokens_per_s", "timing_s/learner", "timing_s/rollout"})
    for (const auto& line : run.metrics) CHECK_MESSAGE(finite_number(line, key), key << " in " << line.dump());
  CHECK(finite_number(run.metrics[0], "val/initial_accuracy"));
  CHECK(finite_number(run.metrics[1], "val/accuracy"));  // every = 2
  CHECK(finite_number(run.metrics[2], "val/accuracy"));  // the last step
  CHECK_FALSE(run.metrics[0].contains("val/accuracy"));
  for (int64_t t = 0; t < 3; ++t) {
    // staleness 0: step t samples with the weights of t learner updates.
    CHECK(run.metrics[t]["rollout/weight_version"].get<double>() == t);
    CHECK(run.metrics[t]["weight_version"].get<int64_t>() == t + 1);
    // fp32 sampler and learner score the same tokens with the same weights.
    CHECK(std::abs(run.metrics[t]["rollout_corr/kl"].get<double>()) < 1e-4);
    // The policy entropy of a random tiny model is near log(257) = 5.55.
    CHECK(run.metrics[t]["actor/entropy"].get<double>() > 3.0);
  }
  // The first mini-batch of the first epoch starts at ratio 1: nothing clipped
  // there, and the learner moved off pi_old afterwards (ppo_kl over the run > 0).
  double kl_total = 0;
  for (const auto& line : run.metrics) kl_total += std::abs(line["actor/ppo_kl"].get<double>());
  CHECK(kl_total > 0);
  fs::remove_all(dir);
}

TEST_CASE("QERL_TORCH_PROFILE profiles the named stage step into a Chrome trace; a malformed value stops the run") {
  const fs::path dir = fresh_dir("profile");
  ::setenv("QERL_TORCH_PROFILE", "learner", 1);  // no step
  const Run bad = run_pipeline_text(dir, rl_pipeline("test.seeded_reward"), {}, &test_registry());
  CHECK_FALSE(bad.result.ok);
  CHECK_MESSAGE(bad.result.error.find("QERL_TORCH_PROFILE: 'learner' is not <stage>:<step>") != std::string::npos,
                bad.result.error);

  fs::remove_all(dir);
  fs::create_directories(dir);
  ::setenv("QERL_TORCH_PROFILE", "learner:1,reference:2", 1);
  const Run run = run_pipeline_text(dir, rl_pipeline("test.seeded_reward"), {}, &test_registry());
  ::unsetenv("QERL_TORCH_PROFILE");
  REQUIRE_MESSAGE(run.result.ok, run.result.error);
  CHECK(run.metrics.size() == 3);
  CHECK_FALSE(fs::exists(dir / "profile" / "learner-step0.json"));
  for (const std::string name : {"learner-step1.json", "reference-step2.json"}) {
    CAPTURE(name);
    REQUIRE(fs::exists(dir / "profile" / name));
    const json trace = json::parse(std::ifstream(dir / "profile" / name));
    int64_t matmuls = 0;  // the stage's forward passes ran inside the profiled step
    for (const auto& event : trace.at("traceEvents"))
      if (event.value("name", "") == "aten::matmul" || event.value("name", "") == "aten::mm") ++matmuls;
    CHECK(matmuls > 0);
  }
  fs::remove_all(dir);
}

TEST_CASE("SFT on the data stage's demonstrations lowers the cross-entropy") {
  const fs::path dir = fresh_dir("sft");
  const std::string toml = R"(
[run]
steps = 12
seed = 2
[model]
path = ")" + tiny_model_dir().string() + R"("
init = "random"
dtype = "fp32"
[data]
source = "builtin:arith?steps=2-2&max_operand=9&ops=+-"
prompts_per_step = 8
samples_per_prompt = 1
heldout_size = 4
[algorithm]
lr = 1e-2
[stages.data]
uses = "data"
[stages.learner]
uses = "learner"
mode = "sft"
gpus = [0]
inputs = { samples = "data.demos" }
)";
  const Run run = run_pipeline_text(dir, toml);
  REQUIRE_MESSAGE(run.result.ok, run.result.error);
  REQUIRE(run.metrics.size() == 12);
  const double first = run.metrics.front()["sft/loss"].get<double>();
  const double last = run.metrics.back()["sft/loss"].get<double>();
  CHECK(first > 4.5);  // random init: about log(257) = 5.55 nats per token
  CHECK(last < first - 1.0);
  fs::remove_all(dir);
}

TEST_CASE("resuming from a checkpoint reproduces the uninterrupted run's metrics, on- and off-policy") {
  for (const int staleness : {0, 1}) {
    INFO("staleness " << staleness);
    const fs::path full = fresh_dir("full"), resumed = fresh_dir("resumed");
    const std::vector<std::string> overrides{
        "run.steps=5", "run.checkpoint_every=3", "run.keep_checkpoints=0", "algorithm.lr_schedule=\"linear\"",
        "stages.rollout.inputs.weights={ from = \"weight_sync.weights\", staleness = " + std::to_string(staleness) +
            " }"};
    const Run a = run_pipeline_text(full, rl_pipeline("test.seeded_reward"), overrides, &test_registry());
    REQUIRE_MESSAGE(a.result.ok, a.result.error);
    REQUIRE(a.metrics.size() == 5);
    const fs::path checkpoint = full / "checkpoints" / "step_000003";
    REQUIRE(fs::exists(checkpoint / "manifest.json"));
    // The learner's policy folder is a loadable HF model.
    CHECK_NOTHROW(models::load_causal_lm(checkpoint / "learner" / "policy"));
    // Off-policy by k steps: step t samples with the weights of t - k updates.
    for (int64_t t = 0; t < 5; ++t)
      CHECK(a.metrics[t]["rollout/weight_version"].get<double>() == std::max<int64_t>(0, t - staleness));

    const Run b = run_pipeline_text(resumed, rl_pipeline("test.seeded_reward"), overrides, &test_registry(),
                                    /*start_step=*/3, checkpoint.string());
    REQUIRE_MESSAGE(b.result.ok, b.result.error);
    REQUIRE(b.metrics.size() == 2);
    for (int i = 0; i < 2; ++i) {
      INFO("step " << i + 3);
      CHECK(without_timing(b.metrics[i]) == without_timing(a.metrics[i + 3]));
    }
    fs::remove_all(full);
    fs::remove_all(resumed);
  }
}

TEST_CASE("a reward plugin loaded from a shared library replaces reward.arith") {
  const fs::path dir = fresh_dir("plugin");
  runtime::StageRegistry registry;
  actors::register_builtin_stages(registry);
  runtime::load_plugin(QERL_CONCISE_REWARD_PLUGIN, registry);
  const Run run = run_pipeline_text(dir, rl_pipeline("example.concise_reward", "budget = 4\npenalty = 0.5\n"),
                                    {"run.steps=2"}, &registry);
  REQUIRE_MESSAGE(run.result.ok, run.result.error);
  REQUIRE(run.metrics.size() == 2);
  for (const auto& line : run.metrics) {
    REQUIRE(finite_number(line, "reward/over_budget"));
    // Random responses run past 4 tokens, so most rewards are negative.
    CHECK(line["reward/over_budget"].get<double>() > 0.5);
    CHECK(line["critic/rewards/mean"].get<double>() < 0);
  }
  fs::remove_all(dir);
}

TEST_CASE("a stage that throws mid-run leaves the last checkpoint intact and loadable") {
  const fs::path dir = fresh_dir("fail");
  const Run run = run_pipeline_text(dir, rl_pipeline("test.failing_reward"),
                                    {"run.steps=6", "run.checkpoint_every=2", "run.keep_checkpoints=0"},
                                    &test_registry());
  CHECK_FALSE(run.result.ok);
  CHECK(run.result.error.find("injected failure") != std::string::npos);
  CHECK(run.metrics.size() == 3);  // steps 0..2 finished
  const fs::path checkpoint = dir / "checkpoints" / "step_000002";
  REQUIRE(fs::exists(checkpoint / "manifest.json"));
  CHECK_FALSE(fs::exists(dir / "checkpoints" / "step_000004"));
  const auto policy = models::load_causal_lm(checkpoint / "learner" / "policy");
  std::ifstream version(checkpoint / "learner" / "version.txt");
  int64_t v = 0;
  version >> v;
  CHECK(v == 2);
  fs::remove_all(dir);
}

TEST_CASE("router replay R1 / R2 / R3 report per-layer mismatch: ~0 on equal weights, > 0 under AQN noise") {
  for (const std::string mode : {"R1", "R2", "R3"}) {
    CAPTURE(mode);
    const fs::path dir = fresh_dir("replay_" + mode);
    // Step 0 samples clean; step 1 with strong AQN noise on the sampler's norms (stage 1 of 2).
    const Run run = run_pipeline_text(dir, rl_pipeline("test.seeded_reward"),
                                      {"run.steps=2", "router_replay.mode=" + mode, "aqn.enabled=true",
                                       "aqn.num_stages=2", "aqn.sigma_start=0.5", "aqn.sigma_end=0.5"},
                                      &test_registry());
    REQUIRE_MESSAGE(run.result.ok, run.result.error);
    REQUIRE(run.metrics.size() == 2);
    for (const auto& line : run.metrics) {
      REQUIRE(finite_number(line, "router/mismatch_rate"));
      CHECK(finite_number(line, "router/mismatch_rate/layer_0"));
      CHECK(line["router/load_imbalance"].get<double>() >= 0);
    }
    // Same fp32 weights in sampler and learner: the routers agree (ties aside).
    CHECK(run.metrics[0]["router/mismatch_rate"].get<double>() < 0.01);
    CHECK(run.metrics[0]["aqn/applied_rms"].get<double>() == 0);
    // The noised sampler routes differently, and the metric sees it.
    CHECK(run.metrics[1]["aqn/applied_rms"].get<double>() > 0.3);
    CHECK(run.metrics[1]["router/mismatch_rate"].get<double>() > 0.02);
    fs::remove_all(dir);
  }
}
