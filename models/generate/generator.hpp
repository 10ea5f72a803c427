// Batched autoregressive generation with a static KV cache. Prompts of
// different lengths are left-padded to a common length; RoPE positions count
// real tokens only, so a row's logits do not depend on its batch mates. Its
// sampled tokens do, through the one seeded stream: a step draws one value
// per row in the decoding batch, so other rows' lengths shift what a row draws.
// Repeated prompts are prefilled once; the batch shrinks as rows stop.
// One host sync per step (the sampled ids, for the stop rules); log-probs
// and routing stay on the device until the end.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "models/generate/sampling.hpp"
#include "models/generate/stop_rules.hpp"
#include "models/nn/causal_lm.hpp"

namespace qerl::models {

struct GenerationConfig {
  int64_t max_new_tokens = 64;
  SamplingParams sampling;
  StopRules stop;
  uint64_t seed = 0;
  int64_t pad_token_id = 0;      // fills the left padding (never attended)
  bool capture_routing = false;  // MoE models only
};

struct GeneratedSequence {
  std::vector<int64_t> tokens;  // generated tokens, stop token included
  std::vector<float> logprobs;  // one per generated token (see sampling.hpp)
  FinishReason finish_reason = FinishReason::length;
  // capture_routing: [P + N - 1, L_moe, K] int16 for the row's P prompt
  // tokens and its first N - 1 generated tokens: the last generated token
  // was never fed through the model, so it has no route.
  torch::Tensor routing;
};

// prompts: token ids, each non-empty. Runs under NoGradGuard on the model's
// device; throws qerl::Error on bad arguments.
std::vector<GeneratedSequence> generate(CausalLMImpl& lm, const std::vector<std::vector<int64_t>>& prompts,
                                        const GenerationConfig& config);

}  // namespace qerl::models
