// Next-token sampling: greedy, temperature, top-k, top-p, drawn with a
// seeded generator and without host syncs (exponential-race sampling:
// argmax(p / Exp(1)) is a draw from p). Log-probs are those of the sampled
// token under softmax(logits / T) over the full vocabulary, before top-k /
// top-p truncation: the quantity verl's actor recomputes (logits.div_(T),
// log_softmax), so rollout and learner log-probs are comparable. Greedy
// (T = 0) reports log-probs at T = 1.
#pragma once

#include <cstdint>

#include <ATen/core/Generator.h>
#include <torch/types.h>

namespace qerl::models {

struct SamplingParams {
  double temperature = 1.0;  // 0 = greedy
  double top_p = 1.0;        // nucleus mass kept, in (0, 1]
  int64_t top_k = 0;         // 0 = no top-k cut
};

struct SampledTokens {
  torch::Tensor tokens;    // [B] int64
  torch::Tensor logprobs;  // [B] float32
};

// Throws qerl::Error on out-of-range parameters.
void validate(const SamplingParams& params);

// logits: [B, V] (any float dtype; computed in float32).
SampledTokens sample_tokens(const torch::Tensor& logits, const SamplingParams& params, at::Generator& generator);

// A generator for `device` seeded with `seed`.
at::Generator make_generator(torch::Device device, uint64_t seed);

}  // namespace qerl::models
