// What both generation loops (generator.hpp, static_generator.hpp) do to
// their prompts before the first forward: check the arguments, share the
// prefill of repeated prompts, and left-pad the distinct ones.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "models/generate/generator.hpp"

namespace qerl::models {

// Throws qerl::Error on an empty batch or prompt, a token outside the
// vocabulary, max_new_tokens < 1 or bad sampling parameters.
void check_generation_args(const CausalLMImpl& lm, const std::vector<std::vector<int64_t>>& prompts,
                           const GenerationConfig& config);

struct PaddedPrompts {
  torch::Tensor ids;   // [B, P] int64
  torch::Tensor mask;  // [B, P] bool, false on the left padding
};
PaddedPrompts left_pad(const std::vector<std::vector<int64_t>>& prompts, int64_t pad, torch::Device device);

// The prefill call: the padded prompts into `cache`, logits of the last
// position only, routes captured when asked.
ForwardArgs prefill_args(const PaddedPrompts& prompt, KVCache* cache, bool capture_routing);

// GRPO repeats each prompt G times: the prefill runs once per distinct
// prompt and its cache rows are copied to every repeat. unique: the rows
// to prefill; expand: [B] int64 (CPU), the prefill row each batch row copies.
struct SharedPrompts {
  std::vector<std::vector<int64_t>> unique;
  torch::Tensor expand;
};
SharedPrompts share_prompts(const std::vector<std::vector<int64_t>>& prompts);

}  // namespace qerl::models
