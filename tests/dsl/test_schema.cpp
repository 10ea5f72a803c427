// Stand-in stage types for the DSL tests; see test_schema.hpp.
#include "test_schema.hpp"

namespace qerl::dsl::testing {

namespace {

KeySpec key(const char* name, ValueKind kind, Value default_value, const char* doc) {
  KeySpec k;
  k.name = name;
  k.kind = kind;
  k.default_value = std::move(default_value);
  k.doc = doc;
  return k;
}

}  // namespace

Schema test_schema() {
  Schema schema = Schema::builtin();

  StageTypeSchema data{"data", "Emits a batch of prompts per step.", {},
                       {{"prompts", "PromptBatch", "prompts of the step", false}}, {}, false};
  data.keys.push_back(key("prefetch", ValueKind::integer, int64_t{2}, "Batches prepared ahead."));
  data.keys.back().min = 0;
  schema.add_stage_type(data);

  StageTypeSchema rollout{"rollout", "Samples responses with the current weights.",
                          {{"prompts", "PromptBatch", "what to answer", false},
                           {"weights", "WeightsUpdate", "new policy weights", false}},
                          {{"samples", "RolloutBatch", "sampled responses", false}}, {}, true};
  rollout.keys.push_back(key("max_new_tokens", ValueKind::integer, int64_t{256}, "Response length cap."));
  rollout.keys.back().min = 1;
  rollout.keys.push_back(key("temperature", ValueKind::floating, 1.0, "Sampling temperature."));
  rollout.keys.back().min = 0;
  rollout.keys.back().max = 10;
  schema.add_stage_type(rollout);

  StageTypeSchema reward{"reward", "Scores responses against the reference answer.",
                         {{"samples", "RolloutBatch", "responses", false}},
                         {{"scores", "Scores", "one reward per response", false}}, {}, false};
  reward.keys.push_back(key("format_bonus", ValueKind::floating, 0.0, "Reward for a parsable answer."));
  schema.add_stage_type(reward);

  StageTypeSchema learner{"learner", "Updates the policy from scored samples.",
                          {{"samples", "RolloutBatch", "responses", false},
                           {"scores", "Scores", "rewards", false},
                           {"ref_logprobs", "RefLogprobs", "reference log-probs for KL", true}},
                          {{"params", "Params", "updated parameters", false}}, {}, true};
  learner.keys.push_back(key("grad_accum", ValueKind::integer, int64_t{1}, "Micro-batches per step."));
  learner.keys.back().min = 1;
  schema.add_stage_type(learner);

  StageTypeSchema sync{"weight_sync", "Ships new weights to the rollout stage.",
                       {{"params", "Params", "from the learner", false}},
                       {{"weights", "WeightsUpdate", "for the rollout", false}}, {}, false};
  sync.keys.push_back(key("format", ValueKind::string, std::string("bf16"), "Wire format."));
  sync.keys.back().one_of = {"bf16", "nvfp4-packed", "lora-only"};
  sync.keys.push_back(key("tags", ValueKind::string_list, std::vector<std::string>{}, "Labels."));
  schema.add_stage_type(sync);
  return schema;
}

std::string test_dir() { return QERL_DSL_TEST_DIR; }

}  // namespace qerl::dsl::testing
