// Sampling implementation; see sampling.hpp for the log-prob convention.
#include "models/generate/sampling.hpp"

#include <limits>

#include <ATen/Context.h>
#include <torch/types.h>

#include "common/error.hpp"

namespace qerl::models {

void validate(const SamplingParams& params) {
  if (params.temperature < 0) throw Error("sampling: temperature must be >= 0");
  if (!(params.top_p > 0 && params.top_p <= 1)) throw Error("sampling: top_p must be in (0, 1]");
  if (params.top_k < 0) throw Error("sampling: top_k must be >= 0");
}

at::Generator make_generator(torch::Device device, uint64_t seed) {
  auto generator = at::globalContext().defaultGenerator(device).clone();
  generator.set_current_seed(seed);
  return generator;
}

namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// scaled: [B, V] float32 -> same with entries outside the top-k / nucleus set to -inf.
torch::Tensor truncate(const torch::Tensor& scaled, const SamplingParams& params) {
  auto filtered = scaled;
  const int64_t vocab = scaled.size(-1);
  if (params.top_k > 0 && params.top_k < vocab) {
    auto kth = std::get<0>(scaled.topk(params.top_k, -1)).narrow(-1, params.top_k - 1, 1);  // [B, 1]
    filtered = filtered.masked_fill(filtered < kth, kMinusInf);
  }
  if (params.top_p < 1.0) {
    auto [sorted, order] = filtered.sort(-1, /*descending=*/true);
    auto probs = sorted.softmax(-1);
    // Drop a token when the mass before it already reaches top_p; the first always stays.
    auto drop_sorted = (probs.cumsum(-1) - probs) >= params.top_p;
    auto drop = torch::zeros_like(drop_sorted).scatter(-1, order, drop_sorted);
    filtered = filtered.masked_fill(drop, kMinusInf);
  }
  return filtered;
}

}  // namespace

SampledTokens sample_tokens(const torch::Tensor& logits, const SamplingParams& params, at::Generator& generator) {
  auto logits32 = logits.to(torch::kFloat);
  SampledTokens out;
  if (params.temperature == 0) {
    out.tokens = logits32.argmax(-1);
    out.logprobs = logits32.log_softmax(-1).gather(-1, out.tokens.unsqueeze(-1)).squeeze(-1);
    return out;
  }
  auto scaled = logits32 / params.temperature;
  auto probs = truncate(scaled, params).softmax(-1);
  // Exp(1) draws, kept off 0 so that zero-probability tokens never win.
  auto race = torch::empty_like(probs).exponential_(1.0, generator).clamp_min_(std::numeric_limits<float>::min());
  out.tokens = (probs / race).argmax(-1);
  out.logprobs = scaled.log_softmax(-1).gather(-1, out.tokens.unsqueeze(-1)).squeeze(-1);
  return out;
}

}  // namespace qerl::models
