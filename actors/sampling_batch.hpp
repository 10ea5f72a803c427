// Turning a generate() call over prompt token ids into a RolloutBatch:
// left-padded prompts, right-padded responses, sampler log-probs and
// (when captured) routing laid out per column. Shared by rollout (sampled)
// and eval (greedy).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "actors/payloads.hpp"
#include "models/engine/sampling_engine.hpp"
#include "models/tokenizer/tokenizer.hpp"

namespace qerl::actors {

struct SampledBatch {
  std::shared_ptr<RolloutBatch> batch;
  int64_t generated_tokens = 0;
  double seconds = 0;  // wall time of generation (decode of text excluded)
};

// Generates for every prompt in chunks of `max_batch_size` rows (0 = all at
// once); chunk c uses seed config.seed + c. Fills tokens, masks, log-probs,
// routing (config.capture_routing), responses (decoded, special tokens
// skipped) and truncated; the caller fills answers and group_ids.
SampledBatch sample_batch(models::SamplingEngine& engine, const models::Tokenizer& tokenizer,
                          const std::vector<std::vector<int64_t>>& prompts, models::GenerationConfig config,
                          int64_t max_batch_size);

}  // namespace qerl::actors
