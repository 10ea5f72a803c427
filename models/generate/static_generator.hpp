// Generation for a GPU sampling engine. The KV cache runs in static mode
// (kv_cache.hpp): every decode step of a given batch size touches the same
// tensors at the same addresses, so a runner may capture it once as a CUDA
// graph and replay it. Rows sit in a bucket of a power-of-two size; there is
// no host read per token: the sampled tokens come to the host every
// `sync_every` steps for the stop rules, and rows that stopped are then
// dropped, the cache compacting into a smaller bucket when they fit one.
// Outputs follow generator.hpp's conventions (tokens, log-probs, routes);
// greedy generation gives the same tokens. Sampled tokens differ from
// models::generate's for one seed: each step draws one value for every row
// of the bucket (padding rows and rows stopped since the last sync
// included), not only for the rows still decoding.
//
// Slots past the prompt are zeroed when a call reuses the cache: masked
// slots still enter attention's sums with weight 0, and a NaN left there by
// an earlier call would otherwise poison this one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include <torch/types.h>

#include "models/generate/generator.hpp"
#include "models/nn/causal_lm.hpp"
#include "models/nn/kv_cache.hpp"

namespace qerl::models {

struct DecodeStepOutput {
  torch::Tensor logits;  // [b, V] model dtype; valid until the next step
  torch::Tensor routes;  // [b, L_moe, K] int16 when routing is captured
};

// Runs one decode step of the model on the leading rows of a static cache.
class DecodeStepRunner {
 public:
  virtual ~DecodeStepRunner() = default;
  // cache: static mode, b rows; input_ids: [b, 1] int64, the token each row
  // feeds. Both keep their addresses from call to call for a given b.
  virtual DecodeStepOutput step(CausalLMImpl& lm, KVCache& cache, const torch::Tensor& input_ids,
                                bool capture_routing) = 0;
  // Forgets whatever holds addresses of the cache or the weights (graphs).
  virtual void reset() {}
};

// The model's forward on every step (the CPU, and models whose forward a
// CUDA graph cannot hold).
class EagerDecodeStep final : public DecodeStepRunner {
 public:
  DecodeStepOutput step(CausalLMImpl& lm, KVCache& cache, const torch::Tensor& input_ids,
                        bool capture_routing) override;
};

// The smallest power of two >= rows.
int64_t decode_bucket(int64_t rows);

class StaticGenerator {
 public:
  explicit StaticGenerator(std::unique_ptr<DecodeStepRunner> runner, int64_t sync_every = 8);

  // As models::generate (same arguments, checks and outputs).
  std::vector<GeneratedSequence> generate(CausalLMImpl& lm, const std::vector<std::vector<int64_t>>& prompts,
                                          const GenerationConfig& config);

  // The weights moved: the runner drops what it captured.
  void reset_runner() { runner_->reset(); }
  // Frees the KV cache (and the runner's graphs); the next call allocates.
  void release();
  // Bytes of the KV cache now allocated.
  int64_t cache_bytes() const;

 private:
  // A cache of at least `rows` x `capacity`, reused while it fits.
  void ensure_cache(const CausalLMImpl& lm, int64_t rows, int64_t capacity);
  KVCache& rows_view(int64_t rows);

  std::unique_ptr<DecodeStepRunner> runner_;
  int64_t sync_every_;
  KVCache cache_;                      // static mode, rows x capacity
  torch::Tensor input_ids_;            // [rows, 1] int64: what the next step feeds
  std::map<int64_t, KVCache> views_;   // leading-row views per bucket
};

}  // namespace qerl::models
