// Declarations of the built-in stage types (ports, keys, documentation),
// each paired with its implementation's factory (actors/*_stage.cpp).
#include "actors/builtin_stages.hpp"

#include "actors/payloads.hpp"
#include "actors/stage_factories.hpp"
#include "actors/stage_options.hpp"
#include "actors/instrumented_stage.hpp"
#include "runtime/plugin_api.hpp"

namespace qerl::actors {
namespace {

// The same helpers a plugin declares its stage types with.
using dsl::StageTypeSchema;
using dsl::ValueKind;
using runtime::choice;
using runtime::key;
using runtime::port;
using runtime::ranged;

// The generation memory keys of rollout and eval (sampling_batch.hpp).
std::vector<dsl::KeySpec> generation_memory_keys() {
  return {
      ranged(key("gpu_memory_fraction", ValueKind::floating, 0.0,
                 "On a CUDA device: the KV cache's budget as a fraction of the device's memory; rows are "
                 "generated in chunks (a power of two, at most max_batch_size) whose cache fits it. 0 = no budget."),
             0, 1),
      choice(key("kv_cache", ValueKind::string, std::string("keep"),
                 "keep = the engine keeps its KV cache (and CUDA graphs) between steps; release = frees them "
                 "after each step's generation, for colocated stages taking turns (the next step allocates "
                 "and captures again)."),
             enum_name_list<KvCachePolicy>()),
  };
}

StageTypeSchema data_stage() {
  StageTypeSchema s;
  s.name = "data";
  s.doc = "Yields [data] prompts_per_step prompts per step (each repeated samples_per_prompt "
          "times) from builtin:arith or a GSM8K JSONL file; keeps a held-out split for eval.";
  s.outputs = {port<PromptBatch>("prompts", "prompt token ids, reference answers, group ids"),
               port<RolloutBatch>("demos",
                                  "the same problems (once each) with their worked solutions: SFT demonstrations")};
  return s;
}

StageTypeSchema rollout_stage() {
  StageTypeSchema s;
  s.name = "rollout";
  s.doc = "Samples responses with its copy of the policy; emits tokens, masks, sampler log-probs "
          "and, when router_replay is on, the routing indices it used. Samples with the "
          "[quantization] scheme's packed weights (W4A16, or W4A4 with inputs calibrated on its "
          "first batch) and with [aqn] noise on the clean weights (metrics aqn/*).";
  s.needs_device = true;
  s.inputs = {port<PromptBatch>("prompts", "prompts to answer"),
              port<WeightsUpdate>("weights",
                                  "new policy weights (a back-edge from weight_sync; declare its staleness)",
                                  /*optional=*/true)};
  s.outputs = {port<RolloutBatch>("samples", "sampled responses with log-probs")};
  s.keys = {
      ranged(key("max_new_tokens", ValueKind::integer, int64_t{256}, "Response length limit in tokens."),
             1, 1 << 20),
      ranged(key("temperature", ValueKind::floating, 1.0, "Sampling temperature; 0 = greedy."), 0, 100),
      ranged(key("top_p", ValueKind::floating, 1.0, "Nucleus sampling mass; 1 = off."), 0, 1),
      ranged(key("top_k", ValueKind::integer, int64_t{0}, "Keep the k most likely tokens; 0 = off."),
             0, 1 << 30),
      key("stop", ValueKind::string_list, std::vector<std::string>{},
          "Stop strings, besides the tokenizer's EOS."),
      ranged(key("max_batch_size", ValueKind::integer, int64_t{0},
                 "Sequences generated together; 0 = the whole step's batch."),
             0, 1 << 20),
  };
  for (auto& k : generation_memory_keys()) s.keys.push_back(std::move(k));
  return s;
}

StageTypeSchema reward_stage(const std::string& name, const std::string& what) {
  StageTypeSchema s;
  s.name = name;
  s.doc = "Scores " + what + ": 1 when the final number after '####' equals the reference "
          "answer, plus an optional format reward.";
  s.inputs = {port<RolloutBatch>("samples", "responses to score")};
  s.outputs = {port<Scores>("scores", "one reward per response")};
  s.keys = {
      key("correct_reward", ValueKind::floating, 1.0, "Reward for a correct final answer."),
      key("format_reward", ValueKind::floating, 0.0,
          "Added when the response has a well-formed '#### N' answer line."),
  };
  return s;
}

StageTypeSchema reference_stage() {
  StageTypeSchema s;
  s.name = "reference";
  s.doc = "Log-probs of the frozen initial policy for the KL penalty (routes natively; "
          "skipped when algorithm.kl_coef = 0).";
  s.needs_device = true;
  s.inputs = {port<RolloutBatch>("samples", "responses to score")};
  s.outputs = {port<RefLogprobs>("ref_logprobs", "per-token log-probs [B, S]")};
  s.keys = {ranged(key("micro_batch_size", ValueKind::integer, int64_t{0},
                       "Sequences per forward pass; 0 = all at once."),
                   0, 1 << 20),
            choice(key("weights", ValueKind::string, std::string("model"),
                       "model = the model's weights in model.dtype; base = the frozen base that "
                       "quantization.train = \"lora\" trains adapters on (the initial policy with adapters "
                       "off, as PEFT's disabled-adapter reference): 4-bit codes when quantization.scheme is set."),
                   enum_name_list<ReferenceWeights>())};
  return s;
}

StageTypeSchema learner_stage() {
  StageTypeSchema s;
  s.name = "learner";
  s.doc = "Updates the policy: GRPO/PPO ([algorithm]), full-parameter; or supervised fine-tuning "
          "with mode = \"sft\". Replays MoE routes under router_replay.mode (R1/R2/R3; metrics router/*). "
          "quantization.train = \"qat\": the forward uses fake-quantized weights, straight-through; "
          "\"lora\": adapters on a frozen (packed, when a scheme is set) base.";
  s.needs_device = true;
  s.inputs = {port<RolloutBatch>("samples", "responses with sampler log-probs"),
              port<Scores>("scores", "rewards", /*optional=*/true),
              port<RefLogprobs>("ref_logprobs", "reference log-probs for the KL penalty",
                                /*optional=*/true)};
  s.outputs = {port<PolicyUpdate>("params", "updated parameters with a new version")};
  s.keys = {
      choice(key("mode", ValueKind::string, std::string("rl"),
                 "rl = policy-gradient update; sft = cross-entropy on reference answers."),
             enum_name_list<LearnerMode>()),
      ranged(key("micro_batch_size", ValueKind::integer, int64_t{0},
                 "Sequences per forward/backward (gradient accumulation); 0 = the mini-batch."),
             0, 1 << 20),
      key("activation_checkpointing", ValueKind::boolean, false,
          "Keep only each decoder layer's input between the forward and the backward and run the layer again "
          "in the backward: activations of about one layer instead of all, for one more forward."),
  };
  return s;
}

StageTypeSchema weight_sync_stage() {
  StageTypeSchema s;
  s.name = "weight_sync";
  s.doc = "Hands the learner's weights to rollout and eval with a version number. "
          "What travels follows [quantization]: "
          "the LoRA tensors only (train = \"lora\"), the packed codes of every quantized Linear "
          "(train = \"qat\" with a scheme; the rest dense), all parameters otherwise; metric "
          "weight_sync/bytes (with transport = \"nccl\", rollout reports weight_sync/transfer_s: how long "
          "its end waited for the bytes).";
  s.inputs = {port<PolicyUpdate>("params", "learner output")};
  s.outputs = {port<WeightsUpdate>("weights", "weights for rollout (and eval)")};
  s.keys = {
      choice(key("transport", ValueKind::string, std::string("auto"),
                 "In one process a reference (auto, copy); to another process the bytes go inside the "
                 "message through the host (auto, copy) or GPU to GPU over NCCL beside it (nccl: the "
                 "learner and its consumers on different GPUs, a build with NCCL)."),
             enum_name_list<SyncTransport>()),
      choice(key("format", ValueKind::string, std::string("auto"),
                 "auto = follows [quantization] (lora-only, packed or full); the only choice for now."),
             enum_name_list<SyncFormat>()),
  };
  return s;
}

StageTypeSchema eval_stage() {
  StageTypeSchema s;
  s.name = "eval";
  s.doc = "Every `every` steps, greedy accuracy of the current policy on the held-out split "
          "(metric val/accuracy).";
  s.needs_device = true;
  s.inputs = {port<WeightsUpdate>("weights", "the policy to evaluate")};
  s.keys = {
      ranged(key("every", ValueKind::integer, int64_t{10}, "Evaluate every N steps (and at the end)."),
             1, 1 << 30),
      ranged(key("max_new_tokens", ValueKind::integer, int64_t{256}, "Response length limit."),
             1, 1 << 20),
      key("at_start", ValueKind::boolean, true,
          "Also evaluate the initial policy at step 0 (metric val/initial_accuracy)."),
      ranged(key("max_batch_size", ValueKind::integer, int64_t{0},
                 "Held-out prompts generated together; 0 = all at once."),
             0, 1 << 20),
  };
  for (auto& k : generation_memory_keys()) s.keys.push_back(std::move(k));
  return s;
}

}  // namespace

void register_builtin_stages(runtime::StageRegistry& registry) {
  using Make = std::unique_ptr<runtime::Stage> (*)();
  const std::pair<StageTypeSchema, Make> types[] = {
      {data_stage(), make_data_stage},
      {rollout_stage(), make_rollout_stage},
      {reward_stage("reward.gsm8k", "GSM8K answers"), make_reward_stage},
      {reward_stage("reward.arith", "builtin:arith answers"), make_reward_stage},
      {reference_stage(), make_reference_stage},
      {learner_stage(), make_learner_stage},
      {weight_sync_stage(), make_weight_sync_stage},
      {eval_stage(), make_eval_stage},
  };
  // instrumented(): per-stage GPU peak memory, and the profiler on request (instrumented_stage.hpp).
  for (const auto& [schema, make] : types)
    registry.add(runtime::StageType{schema, [make = make] { return instrumented(make()); }});
}

}  // namespace qerl::actors
