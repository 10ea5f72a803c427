// The messages of the built-in RL dataflow (DESIGN.md "Core messages"):
// prompts from `data`, sampled responses from `rollout` (also SFT
// demonstrations), rewards, reference log-probs, and the policy weights
// the learner publishes and weight_sync hands to rollout/eval. Plugins that
// consume or produce these (user rewards, filters) include this header and
// link qerl_payloads. Tensors live on the producer's device; payloads are
// immutable once sent (stages copy before modifying).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/engine/weights_format.hpp"
#include "runtime/payload.hpp"

namespace qerl::actors {

using TensorMap = std::map<std::string, torch::Tensor>;

// One step's prompts: each problem repeated samples_per_prompt times in a
// row, so rows [g*G, (g+1)*G) share group_ids[row].
struct PromptBatch final : runtime::Payload {
  std::vector<std::vector<int64_t>> prompt_ids;  // token ids per row (ragged)
  std::vector<int64_t> answers;                  // reference final answer per row
  std::vector<int64_t> group_ids;                // same id = same prompt (GRPO group)
  std::vector<int64_t> problem_ids;              // index of the problem in data.source

  int64_t size() const { return static_cast<int64_t>(prompt_ids.size()); }
  // Whole groups per replica (a group is never split across replicas).
  runtime::PayloadPtr shard(int index, int count) const override;
  std::string type_name() const override { return "PromptBatch"; }
};

// Prompt + response sequences. Prompts are left-padded to prompt_width P,
// responses right-padded to R; response token j sits at column P + j.
// Produced by rollout (sampled) and by data (SFT demonstrations, where
// rollout_logprobs is undefined).
struct RolloutBatch final : runtime::Payload {
  torch::Tensor tokens;            // [B, P + R] int64 (padding = pad id)
  torch::Tensor attention_mask;    // [B, P + R] bool, true = real token
  torch::Tensor response_mask;     // [B, R] bool, true = a generated token (trained on)
  torch::Tensor rollout_logprobs;  // [B, R] float32 sampler log-probs at `temperature` (0 on padding)
  torch::Tensor routing;           // [B, P + R, L_moe, K] int16 routes used by the sampler, or undefined
  int64_t prompt_width = 0;        // P
  int64_t pad_token_id = 0;        // fills padding in `tokens`
  std::vector<std::string> responses;  // decoded response text per row
  std::vector<int64_t> answers;        // reference answer per row
  std::vector<int64_t> group_ids;      // GRPO group per row
  std::vector<uint8_t> truncated;      // 1 = stopped by max_new_tokens (no EOS)
  double temperature = 1.0;            // sampler temperature (learner rescales logits by it)
  int64_t weight_version = 0;          // policy version that produced the samples

  int64_t size() const { return static_cast<int64_t>(answers.size()); }
  int64_t response_width() const { return response_mask.defined() ? response_mask.size(1) : 0; }
  // Rows [begin, end) as a batch of its own (tensors are views, then trimmed
  // to the widest prompt/response of those rows).
  std::shared_ptr<RolloutBatch> rows(int64_t begin, int64_t end) const;
  runtime::PayloadPtr shard(int index, int count) const override;
  runtime::PayloadPtr gather(const std::vector<runtime::PayloadPtr>& parts) const override;
  std::string type_name() const override { return "RolloutBatch"; }
};

// One reward per row, with the parts it was made of (for metrics).
struct Scores final : runtime::Payload {
  torch::Tensor rewards;         // [B] float32, CPU
  std::vector<uint8_t> correct;  // 1 = final answer equals the reference
  std::vector<uint8_t> formatted;  // 1 = a well-formed "#### N" last line

  runtime::PayloadPtr shard(int index, int count) const override;
  runtime::PayloadPtr gather(const std::vector<runtime::PayloadPtr>& parts) const override;
  std::string type_name() const override { return "Scores"; }
};

// Log-probs of the frozen reference policy; undefined when the reference is
// skipped (algorithm.kl_coef = 0).
struct RefLogprobs final : runtime::Payload {
  torch::Tensor logprobs;  // [B, R] float32, aligned with RolloutBatch::response_mask

  runtime::PayloadPtr gather(const std::vector<runtime::PayloadPtr>& parts) const override;
  std::string type_name() const override { return "RefLogprobs"; }
};

// full | packed | lora-only (models/engine/weights_format.hpp).
using models::WeightsFormat;

// Policy weights after a learner update. `tensors` holds HF-named
// parameters detached from the learner (a snapshot: later updates do not
// change them); weight_sync passes them on, rollout copies them in.
struct PolicyUpdate final : runtime::Payload {
  int64_t version = 0;  // learner steps applied
  WeightsFormat format = WeightsFormat::full;
  std::shared_ptr<const TensorMap> tensors;
  std::string type_name() const override { return "PolicyUpdate"; }
};

struct WeightsUpdate final : runtime::Payload {
  int64_t version = 0;
  WeightsFormat format = WeightsFormat::full;
  std::shared_ptr<const TensorMap> tensors;
  // Crossing processes, the tensors move beside the message over a bulk
  // link (NCCL between GPUs: bulk_transfer.hpp) instead of inside it.
  bool beside = false;
  double transfer_s = 0;  // receiving side: seconds its decode waited for those bytes
  std::shared_ptr<void> ready;  // sending side: the producer's work the bytes wait for (bulk::mark_ready)
  std::string type_name() const override { return "WeightsUpdate"; }
};

// Rows [begin, end) of `count` equal-as-possible parts of `rows` items,
// cut only at multiples of `group` (so GRPO groups stay whole).
std::pair<int64_t, int64_t> shard_range(int64_t rows, int64_t group, int index, int count);

}  // namespace qerl::actors
