// Sampling: greedy is argmax, seeded draws are reproducible and follow
// softmax(logits / T) (checked empirically), top-k / top-p keep exactly the
// intended tokens, and log-probs are those of the full T-scaled distribution.
#include <doctest/doctest.h>

#include <torch/types.h>

#include "common/error.hpp"
#include "models/generate/sampling.hpp"

using namespace qerl::models;

namespace {

torch::Tensor random_logits(int64_t batch, int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({batch, vocab}) * 3;
}

// Empirical token frequencies over `rows` identical rows of `logits` [V].
torch::Tensor frequencies(const torch::Tensor& logits, const SamplingParams& params, int64_t rows, uint64_t seed) {
  auto generator = make_generator(torch::kCPU, seed);
  auto batch = logits.unsqueeze(0).expand({rows, logits.size(0)}).contiguous();
  auto tokens = sample_tokens(batch, params, generator).tokens;
  return torch::bincount(tokens, {}, logits.size(0)).to(torch::kDouble) / static_cast<double>(rows);
}

}  // namespace

TEST_CASE("greedy takes the argmax and reports log-probs at T = 1") {
  auto logits = random_logits(6, 50, 1);
  auto generator = make_generator(torch::kCPU, 0);
  auto out = sample_tokens(logits, {/*temperature=*/0.0}, generator);
  CHECK(torch::equal(out.tokens, logits.argmax(-1)));
  auto expected = logits.log_softmax(-1).gather(-1, out.tokens.unsqueeze(-1)).squeeze(-1);
  CHECK(torch::allclose(out.logprobs, expected));
}

TEST_CASE("seeded sampling is reproducible and log-probs use the T-scaled distribution") {
  auto logits = random_logits(8, 40, 2);
  SamplingParams params{/*temperature=*/0.7, /*top_p=*/0.9, /*top_k=*/20};
  auto g1 = make_generator(torch::kCPU, 42);
  auto g2 = make_generator(torch::kCPU, 42);
  auto g3 = make_generator(torch::kCPU, 43);
  auto a = sample_tokens(logits, params, g1);
  auto b = sample_tokens(logits, params, g2);
  CHECK(torch::equal(a.tokens, b.tokens));
  bool differs = false;
  for (int i = 0; i < 5 && !differs; ++i) differs = !torch::equal(sample_tokens(logits, params, g3).tokens, a.tokens);
  CHECK(differs);
  auto expected = (logits / 0.7).log_softmax(-1).gather(-1, a.tokens.unsqueeze(-1)).squeeze(-1);
  CHECK(torch::allclose(a.logprobs, expected));
}

TEST_CASE("draws follow softmax(logits / T)") {
  auto logits = torch::tensor({1.0f, 0.0f, -0.5f, 2.0f, 0.3f});
  auto freq = frequencies(logits, {/*temperature=*/1.5}, 40000, 7);
  auto expected = (logits / 1.5).softmax(-1).to(torch::kDouble);
  CHECK((freq - expected).abs().max().item<double>() < 0.01);
}

TEST_CASE("top-k and top-p keep the intended tokens, renormalized") {
  auto logits = torch::tensor({1.0f, 0.0f, -0.5f, 2.0f, 0.3f});  // probs order: 3, 0, 4, 1, 2
  auto top2 = frequencies(logits, {1.0, 1.0, /*top_k=*/2}, 40000, 8);
  auto p = logits.softmax(-1).to(torch::kDouble);
  auto mass = p[3] + p[0];
  CHECK(top2[3].item<double>() == doctest::Approx((p[3] / mass).item<double>()).epsilon(0.03));
  CHECK(top2[1].item<double>() + top2[2].item<double>() + top2[4].item<double>() == 0);
  // p[3] ~ 0.57 < 0.6: the nucleus needs tokens 3 and 0 (~0.78 >= 0.6).
  auto nucleus = frequencies(logits, {1.0, /*top_p=*/0.6, 0}, 40000, 9);
  CHECK(nucleus[0].item<double>() > 0.1);
  CHECK(nucleus[4].item<double>() + nucleus[1].item<double>() + nucleus[2].item<double>() == 0);
  auto only_max = frequencies(logits, {1.0, /*top_p=*/0.1, 0}, 2000, 10);
  CHECK(only_max[3].item<double>() == 1.0);
  auto top1 = frequencies(random_logits(1, 30, 3)[0], {5.0, 1.0, /*top_k=*/1}, 500, 11);
  CHECK(top1.max().item<double>() == 1.0);
}

TEST_CASE("out-of-range sampling parameters are rejected") {
  CHECK_THROWS_AS(validate({-1.0, 1.0, 0}), qerl::Error);
  CHECK_THROWS_AS(validate({1.0, 0.0, 0}), qerl::Error);
  CHECK_THROWS_AS(validate({1.0, 1.5, 0}), qerl::Error);
  CHECK_THROWS_AS(validate({1.0, 1.0, -2}), qerl::Error);
  CHECK_NOTHROW(validate({0.0, 1.0, 0}));
}
