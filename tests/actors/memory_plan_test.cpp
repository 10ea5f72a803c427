// The memory plan (actors/memory_plan.hpp) against what the stages really
// allocate, on the shipped tiny MoE: the planned weights, packed base, LoRA
// adapters, fp32 masters, Adam moments and published update of each stage
// equal the bytes of the tensors built the way that stage builds them;
// the KV cache formula equals hand-computed numbers and a real KVCache; the
// activation estimate is the documented formula; devices sharing stages sum
// persistent parts and take the largest turn; a plan over capacity is refused.
#include <doctest/doctest.h>

#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "actors/builtin_stages.hpp"
#include "actors/memory_plan.hpp"
#include "actors/policy.hpp"
#include "actors/policy_trainer.hpp"
#include "dsl/loader.hpp"
#include "models/nn/kv_cache.hpp"
#include "models/nn/weights.hpp"
#include "runtime/graph.hpp"
#include "runtime/placement.hpp"
#include "runtime/stage_registry.hpp"

using namespace qerl;
using actors::MemoryPlan;
namespace part = actors::part;

namespace {

runtime::StageRegistry& plan_registry() {
  static runtime::StageRegistry r;
  if (!r.find("learner")) actors::register_builtin_stages(r);
  return r;
}

dsl::PipelineSpec shipped(const std::string& file, const std::vector<std::string>& overrides = {}) {
  return dsl::load_pipeline(std::string(QERL_SOURCE_DIR) + "/pipelines/" + file, overrides, plan_registry().schema());
}

MemoryPlan plan_of(const dsl::PipelineSpec& spec, const actors::CapacityOf& capacity = {}, int gpus = 0) {
  const runtime::Graph graph = runtime::Graph::build(spec, plan_registry());
  const runtime::Placement placement = runtime::place(spec, graph, plan_registry(), /*physical_gpus=*/gpus);
  return actors::plan_memory(spec, placement, capacity);
}

int64_t nbytes(const std::vector<torch::Tensor>& tensors) {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.numel() * static_cast<int64_t>(t.element_size());
  return n;
}

int64_t nbytes(const TensorMap& tensors) {
  int64_t n = 0;
  for (const auto& [name, t] : tensors) n += t.numel() * static_cast<int64_t>(t.element_size());
  return n;
}

// Adam's state after one step: exp_avg + exp_avg_sq of every trainable tensor.
int64_t adam_state_bytes(actors::PolicyTrainer& trainer) {
  for (auto& t : trainer.masters().trainable()) t.mutable_grad() = torch::randn_like(t);
  trainer.optimizer().step();
  int64_t n = 0;
  for (const auto& [key, state] : trainer.optimizer().state()) {
    const auto& adam = static_cast<const torch::optim::AdamWParamState&>(*state);
    n += nbytes(std::vector<torch::Tensor>{adam.exp_avg(), adam.exp_avg_sq()});
    if (adam.max_exp_avg_sq().defined()) n += nbytes(std::vector<torch::Tensor>{adam.max_exp_avg_sq()});
  }
  trainer.masters().zero_grads();
  return n;
}

actors::TrainerSettings settings_of(const dsl::PipelineSpec& spec) {
  actors::TrainerSettings s;
  s.algorithm = spec.algorithm;
  return s;
}

}  // namespace

TEST_CASE("memory plan: rollout and eval bytes equal the sampling engine's tensors (NVFP4 + LoRA + AQN, bf16)") {
  const dsl::PipelineSpec spec = shipped("r3_aqn_nvfp4.toml");
  const MemoryPlan plan = plan_of(spec);
  REQUIRE(plan.devices.size() == 1);
  CHECK(plan.devices[0].device == "cpu");
  for (const bool rollout : {true, false}) {
    const std::string stage = rollout ? "rollout" : "eval";
    CAPTURE(stage);
    auto engine = actors::open_sampling_engine(spec, torch::kCPU, /*with_aqn=*/rollout, /*logger=*/nullptr);
    const models::ResidentWeights resident = engine->resident_weights();
    CHECK(resident.code_bytes > 0);
    CHECK(plan.bytes_of(stage, part::weights) == resident.dense_bytes);
    CHECK(plan.bytes_of(stage, part::packed_base) == resident.code_bytes);
  }
  // The adapters every copy holds: built as the engines and the learner build them.
  models::LoadedModel policy = actors::open_policy(spec, torch::kCPU, actors::model_dtype(spec));
  models::LoraAdapters lora(*policy.lm, actors::lora_config_of(spec), actors::lora_seed(spec));
  CHECK(nbytes(lora.parameters()) > 0);
  for (const char* stage : {"rollout", "eval", "learner"}) {
    CAPTURE(stage);
    CHECK(plan.bytes_of(stage, part::lora) == nbytes(lora.parameters()));
  }
  // AQN noises the rollout's 17 RMSNorm weights (4 layers x 4 + the final norm) in bf16.
  int64_t norms = 0;
  for (const auto& item : policy.lm->named_parameters())
    if (item.key().find("norm.weight") != std::string::npos) norms += item.value().numel() * 2;
  CHECK(plan.bytes_of("rollout", part::aqn_clean) == norms);
  CHECK(plan.bytes_of("eval", part::aqn_clean) == 0);
}

TEST_CASE("memory plan: the LoRA learner's frozen base, adapters, Adam moments and update equal what it allocates") {
  const dsl::PipelineSpec spec = shipped("r3_aqn_nvfp4.toml");
  const MemoryPlan plan = plan_of(spec);
  // As LearnerStage::setup builds it.
  models::LoadedModel policy = actors::open_policy(spec, torch::kCPU, actors::model_dtype(spec));
  auto base = actors::open_packed_base(spec, policy, actors::base_residency(spec.aqn, spec.aqn.on_training()), torch::kCPU);
  for (auto& p : policy.lm->parameters()) p.requires_grad_(false);
  models::LoraAdapters lora(*policy.lm, actors::lora_config_of(spec), actors::lora_seed(spec));
  actors::PolicyTrainer trainer(policy.lm, lora.parameters(), lora.parameter_names(), settings_of(spec), nullptr, {});
  const models::ResidentWeights resident = models::resident_weights(*policy.lm);
  CHECK(plan.bytes_of("learner", part::weights) == resident.dense_bytes);
  CHECK(plan.bytes_of("learner", part::packed_base) == base->code_bytes());
  CHECK(plan.bytes_of("learner", part::packed_base) == resident.code_bytes);
  CHECK_FALSE(trainer.masters().active());  // fp32 adapters: no masters
  CHECK(plan.bytes_of("learner", part::masters) == 0);
  CHECK(plan.bytes_of("learner", part::adam) == adam_state_bytes(trainer));
  CHECK(plan.bytes_of("learner", part::update) == nbytes(lora.tensors()));
  CHECK(plan.bytes_of("learner", part::gradients) == nbytes(lora.parameters()));
  // The reference (kl_coef > 0) holds the whole bf16 policy.
  models::LoadedModel reference = actors::open_policy(spec, torch::kCPU, actors::model_dtype(spec));
  CHECK(plan.bytes_of("reference", part::weights) == models::resident_weights(*reference.lm).dense_bytes);
}

TEST_CASE("memory plan: a full-parameter QAT learner in bf16 keeps fp32 masters, Adam moments and sends codes") {
  const dsl::PipelineSpec spec = shipped("r3_aqn_nvfp4_qat.toml");
  const MemoryPlan plan = plan_of(spec);
  models::LoadedModel policy = actors::open_policy(spec, torch::kCPU, actors::model_dtype(spec));
  std::vector<torch::Tensor> params;
  std::vector<std::string> names;
  for (auto& item : policy.lm->named_parameters()) names.push_back(item.key()), params.push_back(item.value());
  CHECK(plan.bytes_of("learner", part::weights) == nbytes(params));
  CHECK(plan.bytes_of("learner", part::packed_base) == 0);
  const auto quant = spec.quantization.quant;
  models::install_qat(*policy.lm, quant);
  const auto targets = models::plan_quantization(*policy.lm, quant, nullptr);
  actors::PolicyTrainer trainer(policy.lm, params, names, settings_of(spec), nullptr, {});
  REQUIRE(trainer.masters().active());
  CHECK(plan.bytes_of("learner", part::masters) == nbytes(trainer.masters().trainable()));
  CHECK(plan.bytes_of("learner", part::adam) == adam_state_bytes(trainer));
  CHECK(plan.bytes_of("learner", part::update) == nbytes(*actors::snapshot_packed(*policy.lm, targets, quant)));
  // bf16 policy grads + their fp32 master copies.
  CHECK(plan.bytes_of("learner", part::gradients) == nbytes(params) + nbytes(trainer.masters().trainable()));
}

TEST_CASE("memory plan: on a CUDA device the experts are held once; LoRA copies stack their experts' adapters in bf16") {
  const dsl::PipelineSpec spec = shipped("r3_aqn_nvfp4.toml");
  const MemoryPlan cpu = plan_of(spec);
  for (const char* stage : {"rollout", "eval", "reference", "learner"}) CHECK(cpu.bytes_of(stage, part::stacked_experts) == 0);
  const MemoryPlan gpu = plan_of(spec, {}, /*gpus=*/1);
  REQUIRE(gpu.devices.size() == 1);
  CHECK(gpu.devices[0].device == "cuda:0");
  // Independently: the experts' adapters of the model the stages build.
  models::LoadedModel policy = actors::open_policy(spec, torch::kCPU, actors::model_dtype(spec));
  models::LoraAdapters lora(*policy.lm, actors::lora_config_of(spec), actors::lora_seed(spec));
  int64_t expert_lora = 0;  // stacked in bf16
  const auto names = lora.parameter_names();
  const auto params = lora.parameters();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i].find(".experts.") != std::string::npos) expert_lora += params[i].numel() * 2;
  CHECK(expert_lora > 0);
  for (const char* stage : {"rollout", "eval", "learner"}) {
    CAPTURE(stage);
    CHECK(gpu.bytes_of(stage, part::stacked_experts) == expert_lora);
    // The experts' codes are counted once, in the packed base.
    CHECK(gpu.bytes_of(stage, part::packed_base) == cpu.bytes_of(stage, part::packed_base));
  }
  CHECK(gpu.bytes_of("reference", part::stacked_experts) == 0);  // no adapters
}

TEST_CASE("memory plan: reference weights = \"base\" holds the packed base, as the codes a real PackedBase makes") {
  const dsl::PipelineSpec spec = shipped("r3_aqn_nvfp4.toml", {"stages.reference.weights=base"});
  const MemoryPlan plan = plan_of(spec);
  models::LoadedModel policy = actors::open_policy(spec, torch::kCPU, actors::model_dtype(spec));
  auto base = actors::open_packed_base(spec, policy, models::Residency::codes_only, torch::kCPU);
  REQUIRE(base);
  CHECK(plan.bytes_of("reference", part::packed_base) == nbytes(base->packed_tensors()));
  // What stays dense: every parameter with storage (the quantized Linears' weights are freed).
  std::vector<torch::Tensor> dense;
  for (const auto& p : policy.lm->parameters()) dense.push_back(p);
  CHECK(plan.bytes_of("reference", part::weights) == nbytes(dense));
  const MemoryPlan model_weights = plan_of(shipped("r3_aqn_nvfp4.toml"));
  CHECK(model_weights.bytes_of("reference", part::packed_base) == 0);
  CHECK(plan.bytes_of("reference", part::weights) < model_weights.bytes_of("reference", part::weights));
}

TEST_CASE("memory plan: the KV cache formula equals hand-computed bytes and a real KVCache") {
  // The shipped tiny MoE, bf16: 4 layers x 2 (K, V) x 2 heads x 32 x 2 bytes = 1024 bytes per token and row.
  CHECK(actors::kv_cache_bytes({4, 2, 32, 2, 512, 64}) == 1024LL * 512 * 64);
  // The A2.7B shape (24 layers, 16 KV heads of 128), bf16, 64 prompts x 8 samples of 128 + 256 tokens.
  CHECK(actors::kv_cache_bytes({24, 16, 128, 2, 384, 512}) == 38654705664LL);
  // A real cache of the tiny model: K and V tensors (its [B, S] mask and positions are not counted).
  const auto config = models::load_model_config(std::string(QERL_SOURCE_DIR) + "/assets/tiny-moe/config.json");
  const auto cache = models::KVCache::allocate(config, /*batch_size=*/6, /*max_length=*/40, torch::kBFloat16, torch::kCPU);
  CHECK(nbytes(cache.keys) + nbytes(cache.values) == actors::kv_cache_bytes({4, 2, 32, 2, 40, 6}));
}

TEST_CASE("memory plan: the engine's rows per chunk under max_batch_size and a gpu_memory_fraction budget") {
  // The tiny model: 1024 bytes per token and row; 40 tokens are allocated as 64, so 64 KiB a row.
  const actors::KvShape tiny{4, 2, 32, 2, 40, 0};
  CHECK(actors::engine_chunk_rows(tiny, 0, 100, 0) == 100);
  CHECK(actors::engine_chunk_rows(tiny, 16, 100, 0) == 16);
  CHECK(actors::engine_chunk_rows(tiny, 0, 0, 0) == 1);
  // 1 MiB holds 16 rows: 100 rows (allocated as 128) go 16 at a time; 12 rows (allocated as 16) at once.
  CHECK(actors::engine_chunk_rows(tiny, 0, 100, 1 << 20) == 16);
  CHECK(actors::engine_chunk_rows(tiny, 0, 12, 1 << 20) == 12);
  CHECK(actors::engine_chunk_rows(tiny, 8, 100, 1 << 20) == 8);
  CHECK(actors::engine_chunk_rows(tiny, 0, 100, (1 << 20) - 1) == 8);
  CHECK(actors::engine_chunk_rows(tiny, 0, 100, 1000) == 1);  // never below one row
}

TEST_CASE("memory plan: on a CUDA device the KV cache is persistent unless kv_cache = \"release\"; the budget sets its rows") {
  const auto kv_of = [](const std::vector<std::string>& overrides, bool& transient) {
    const MemoryPlan plan = plan_of(shipped("r3_aqn_nvfp4.toml", overrides),
                                    [](const std::string&) { return std::make_pair(int64_t{80} << 30, std::string("test")); },
                                    /*gpus=*/1);
    for (const auto& p : plan.devices.at(0).parts)
      if (p.stage == "rollout" && p.part == std::string(part::kv_cache)) {
        transient = p.transient;
        return p.bytes;
      }
    return int64_t{-1};
  };
  bool transient = true;
  const int64_t kept = kv_of({}, transient);
  CHECK_FALSE(transient);
  CHECK(kv_of({"stages.rollout.kv_cache=release"}, transient) == kept);
  CHECK(transient);
  // A budget of 1e-6 x 80 GiB (85.9 KB) is less than one row of the tiny model's cache (1024 bytes a
  // position): the engine goes one row at a time.
  const dsl::PipelineSpec spec = shipped("r3_aqn_nvfp4.toml");
  const int64_t rows = spec.data.prompts_per_step * spec.data.samples_per_prompt;
  REQUIRE(rows > 1);
  CHECK(kv_of({"stages.rollout.gpu_memory_fraction=1e-6"}, transient) == kept / rows);
}

TEST_CASE("memory plan: the learner activation estimate is the documented per-token formula, with and without checkpointing") {
  const auto config = models::load_model_config(std::string(QERL_SOURCE_DIR) + "/assets/tiny-moe/config.json");
  // docs/memory-plan.md, hidden h = 128, q = 128, kv = 64, 8 experts top-2 of width 128, no shared expert:
  // attention 4h + 2(q + 2kv) + q + h = 1280; MoE 3E + k(4w + 3h) = 24 + 1792; per layer 3096;
  // 4 layers + 2h = 12640 values per token.
  CHECK(actors::learner_activation_bytes(config, 2, 3, 100, 0, false) == 12640LL * 2 * 3 * 100);
  // LoRA rank r adds r per adapted Linear a token passes: 4 attention + 3 per chosen expert = 10.
  CHECK(actors::learner_activation_bytes(config, 2, 1, 1, 16, false) == (12640LL + 4 * 10 * 16) * 2);
  // Checkpointed: each of the 4 layers' inputs (h = 128) and one layer's 3096, + 2h.
  CHECK(actors::learner_activation_bytes(config, 2, 3, 100, 0, true) == (4LL * 128 + 3096 + 2 * 128) * 2 * 3 * 100);
}

TEST_CASE("memory plan: a shared device sums persistent parts and takes the largest turn; over capacity is refused") {
  const dsl::PipelineSpec spec = shipped("r3_aqn_nvfp4.toml");
  const MemoryPlan open = plan_of(spec);
  REQUIRE(open.devices.size() == 1);
  const actors::DeviceMemory& cpu = open.devices[0];
  int64_t persistent = 0, learner_turn = 0, rollout_turn = 0;
  for (const auto& p : cpu.parts) {
    if (!p.transient) persistent += p.bytes;
    if (p.transient && p.stage == "learner") learner_turn += p.bytes;
    if (p.transient && p.stage == "rollout") rollout_turn += p.bytes;
  }
  CHECK(cpu.persistent() == persistent);
  CHECK(cpu.largest_turn_bytes() >= std::max(learner_turn, rollout_turn));
  CHECK(cpu.peak() == persistent + cpu.largest_turn_bytes());
  CHECK(cpu.peak() < cpu.all_transient() + persistent);
  CHECK_FALSE(cpu.capacity);
  CHECK(open.refusals().empty());
  // The rollout's KV cache: 64 rows x min(512, 512 + 128) tokens of the tiny model in bf16.
  CHECK(open.bytes_of("rollout", part::kv_cache) == 1024LL * 512 * 64);
  CHECK(open.to_text().find("planned peak") != std::string::npos);

  const MemoryPlan tight = plan_of(spec, [](const std::string&) {
    return std::make_optional(std::make_pair(int64_t{1} << 20, std::string("--device-memory")));
  });
  const auto refusals = tight.refusals();
  REQUIRE(refusals.size() == 1);
  CHECK(refusals[0].find("memory plan: cpu needs " + actors::memory_text(tight.devices[0].peak())) == 0);
  CHECK(refusals[0].find("but has 1 MiB (--device-memory); largest parts: ") != std::string::npos);
}

TEST_CASE("memory sizes parse with binary and decimal units") {
  CHECK(actors::parse_memory_size("80GB") == 80000000000LL);
  CHECK(actors::parse_memory_size("141 GiB") == 141LL << 30);
  CHECK(actors::parse_memory_size("512MiB") == 512LL << 20);
  CHECK(actors::parse_memory_size("2") == 2LL << 30);
  CHECK_THROWS_AS(actors::parse_memory_size("lots"), qerl::Error);
  CHECK_THROWS_AS(actors::parse_memory_size("8 parsecs"), qerl::Error);
  CHECK(actors::memory_text(1536LL << 20) == "1.5 GiB");
}
