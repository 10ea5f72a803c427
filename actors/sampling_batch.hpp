// Turning a generate() call over prompt token ids into a RolloutBatch:
// left-padded prompts, right-padded responses, sampler log-probs and
// (when captured) routing laid out per column. Shared by rollout (sampled)
// and eval (greedy).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "actors/payloads.hpp"
#include "dsl/pipeline_spec.hpp"
#include "models/engine/sampling_engine.hpp"
#include "models/tokenizer/tokenizer.hpp"

namespace qerl::actors {

struct SampledBatch {
  std::shared_ptr<RolloutBatch> batch;
  int64_t generated_tokens = 0;
  double seconds = 0;  // wall time of generation (decode of text excluded)
  int64_t chunk_rows = 0;  // rows generated together
};

// How a rollout or eval stage spends memory on generation (its keys
// max_batch_size, gpu_memory_fraction, kv_cache).
struct GenerationLimits {
  int64_t max_batch_size = 0;        // rows generated together; 0 = all
  int64_t kv_budget_bytes = 0;       // > 0: the KV cache must fit this many bytes
  int64_t kv_dtype_bytes = 2;        // bytes per cached value (the model dtype)
  bool release_kv_cache = false;     // free the engine's cache after each call
  bool cuda = false;                 // the stage's device is a CUDA device
};

// The stage's limits; gpu_memory_fraction x the memory of `device` when it
// is a CUDA device (the fraction is ignored elsewhere: no static cache).
GenerationLimits generation_limits(const dsl::StageSpec& stage, torch::Device device, int64_t dtype_bytes);

// Generates for every prompt in chunks (engine_chunk_rows of memory_plan.hpp); chunk c uses
// seed config.seed + c; afterwards releases the engine's KV cache when the
// limits say so. Fills tokens, masks, log-probs, routing
// (config.capture_routing), responses (decoded, special tokens skipped) and
// truncated; the caller fills answers and group_ids.
SampledBatch sample_batch(models::SamplingEngine& engine, const models::Tokenizer& tokenizer,
                          const std::vector<std::vector<int64_t>>& prompts, models::GenerationConfig config,
                          const GenerationLimits& limits);

}  // namespace qerl::actors
