// Per-token log-probs (and entropy) of the response tokens of a
// RolloutBatch under a model. Rows with the same prompt (a GRPO group) run
// it once, their responses on top of a copy of its KV cache; rows with
// distinct prompts (or replayed routes) run one forward over prompt +
// response that keeps the R + 1 logits predicting response tokens. Logits
// are divided by the sampler's temperature first, as the sampler did, so
// that sampler, learner and reference log-probs are comparable.
#pragma once

#include <cstdint>

#include "actors/payloads.hpp"
#include "models/nn/causal_lm.hpp"

namespace qerl::actors {

struct ResponseScores {
  torch::Tensor logprobs;  // [b, R] float32 (0 where response_mask is false is NOT guaranteed: mask it)
  torch::Tensor entropy;   // [b, R] float32, undefined unless asked for
  // Capture / replay: indices [b, P + R, L_moe, K] int16 the forward routed
  // by, and (replay) native_indices, the router's own top-k. The last
  // column was never fed through the model when prompts were shared: 0.
  models::RoutingRecord routing;
};

// The rows of `batch` listed in `rows` ([b] int64, CPU); gradients flow
// unless the caller holds a NoGradGuard. temperature <= 0 counts as 1
// (greedy samplers report log-probs at T = 1). `routing` is for those rows:
// replay indices / mask are [b, P + R, ...] (already selected by `rows`).
ResponseScores score_responses(models::CausalLMImpl& lm, const RolloutBatch& batch, const torch::Tensor& rows,
                               bool with_entropy, const models::Routing& routing = models::Routing::native());

// Rows of equal prompts (ids and mask): prompt_rows [U] int64 the first row
// of each distinct prompt, member_of [b] int64 which of them each row is.
// Both undefined when every prompt is distinct (nothing to share).
struct PromptGroups {
  torch::Tensor prompt_rows;
  torch::Tensor member_of;
};
PromptGroups group_prompts(const torch::Tensor& prompts, const torch::Tensor& prompt_mask);  // [b, P] each

// score_responses over the whole batch in chunks of micro_batch rows (0 =
// all), without gradients: [B, R] float32 log-probs.
torch::Tensor response_logprobs(models::CausalLMImpl& lm, const RolloutBatch& batch, int64_t micro_batch);

}  // namespace qerl::actors
