// Token statistics, LR schedule and gradient clipping: token_logprobs and
// token_entropy equal a naive per-token loop (float32 and bf16 logits), the
// entropy of uniform logits is log V; lr_at follows each schedule at warm-up,
// middle and end; clip_grad_norm returns the manual norm and scales exactly
// when it should. In CUDA builds, every rl/ function gives on a GPU what it
// gives on the CPU, with its outputs left on the GPU.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include <torch/types.h>
#include <torch/utils.h>

#include "common/error.hpp"
#include "rl/advantages.hpp"
#include "rl/grad_clip.hpp"
#include "rl/kl.hpp"
#include "rl/loss_agg.hpp"
#include "rl/lr_schedule.hpp"
#include "rl/policy_loss.hpp"
#include "rl/token_stats.hpp"

#ifdef QERL_CUDA
#include <torch/cuda.h>
#endif

using namespace qerl::rl;

namespace {

double largest_difference(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a.detach().to(torch::kDouble) - b.detach().to(torch::kDouble)).abs().max().item<double>();
}

struct NaiveTokenStats {
  torch::Tensor logprobs;  // [B, S] double
  torch::Tensor entropy;   // [B, S] double
};

// Per-token loop in double: log p(target) = l[t] - log sum exp l, H = -sum p log p.
NaiveTokenStats naive_token_stats(const torch::Tensor& logits, const torch::Tensor& targets) {
  const auto l = logits.detach().to(torch::kDouble).contiguous();
  const auto la = l.accessor<double, 3>();
  const auto ta = targets.accessor<int64_t, 2>();
  auto logprobs = torch::zeros({l.size(0), l.size(1)}, torch::kDouble);
  auto entropy = torch::zeros_like(logprobs);
  auto lp = logprobs.accessor<double, 2>();
  auto h = entropy.accessor<double, 2>();
  for (int64_t b = 0; b < l.size(0); ++b) {
    for (int64_t s = 0; s < l.size(1); ++s) {
      double top = -std::numeric_limits<double>::infinity();
      for (int64_t v = 0; v < l.size(2); ++v) top = std::max(top, la[b][s][v]);
      double z = 0;
      for (int64_t v = 0; v < l.size(2); ++v) z += std::exp(la[b][s][v] - top);
      const double log_z = top + std::log(z);
      lp[b][s] = la[b][s][ta[b][s]] - log_z;
      for (int64_t v = 0; v < l.size(2); ++v) {
        const double log_p = la[b][s][v] - log_z;
        h[b][s] -= std::exp(log_p) * log_p;
      }
    }
  }
  return {logprobs, entropy};
}

// A parameter with the given gradient.
torch::Tensor param_with_grad(const torch::Tensor& grad) {
  auto p = torch::zeros_like(grad).requires_grad_(true);
  p.mutable_grad() = grad.clone();
  return p;
}

}  // namespace

// ------------------------------------------------------------- token stats

TEST_CASE("token_logprobs and token_entropy by hand, and uniform logits give log V") {
  // logits {1, 2, 3}: log Z = log(e + e^2 + e^3) = 3.40760596
  //   log p(2) = 3 - 3.40760596 = -0.40760596
  //   p = {0.09003057, 0.24472847, 0.66524096}; sum p*l = 0.09003057 + 0.48945694 + 1.99572288 = 2.57521039
  //   H = 3.40760596 - 2.57521039 = 0.83239557
  const auto logits = torch::tensor({1.f, 2.f, 3.f}).reshape({1, 1, 3});
  const auto targets = torch::tensor({2}, torch::kLong).reshape({1, 1});
  CHECK(token_logprobs(logits, targets).item<double>() == doctest::Approx(-0.40760596).epsilon(1e-6));
  CHECK(token_entropy(logits).item<double>() == doctest::Approx(0.83239557).epsilon(1e-6));

  // Constant logits over V = 50: p = 1/50 everywhere, H = log 50 = 3.91202301, log p = -log 50.
  const auto uniform = torch::full({2, 3, 50}, 7.25);
  const auto any_targets = torch::tensor({0, 17, 49, 3, 3, 25}, torch::kLong).reshape({2, 3});
  CHECK(largest_difference(token_entropy(uniform), torch::full({2, 3}, std::log(50.0))) < 1e-5);
  CHECK(largest_difference(token_logprobs(uniform, any_targets), torch::full({2, 3}, -std::log(50.0))) < 1e-5);
}

TEST_CASE("token_logprobs and token_entropy match a naive loop (float32 and bf16 logits)") {
  torch::manual_seed(21);
  const auto logits = torch::randn({3, 5, 37}) * 4;
  const auto targets = torch::randint(0, 37, {3, 5}, torch::kLong);
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    CAPTURE(c10::toString(dtype));
    const auto typed = logits.to(dtype);
    const auto want = naive_token_stats(typed, targets);  // on the logits as they are after rounding to dtype
    const auto logprobs = token_logprobs(typed, targets);
    const auto entropy = token_entropy(typed);
    CHECK((logprobs.scalar_type() == torch::kFloat));
    CHECK((entropy.scalar_type() == torch::kFloat));
    CHECK(logprobs.sizes() == torch::IntArrayRef{3, 5});
    CHECK(largest_difference(logprobs, want.logprobs) < 1e-5);
    CHECK(largest_difference(entropy, want.entropy) < 1e-5);
  }
}

TEST_CASE("token_logprobs gradient is onehot(target) - softmax") {
  torch::manual_seed(22);
  auto logits = (torch::randn({2, 4, 9}) * 2).requires_grad_(true);
  const auto targets = torch::randint(0, 9, {2, 4}, torch::kLong);
  token_logprobs(logits, targets).sum().backward();
  const auto l = logits.detach().to(torch::kDouble);
  const auto want = torch::one_hot(targets, 9).to(torch::kDouble) - torch::exp(l - l.logsumexp(-1, /*keepdim=*/true));
  CHECK(largest_difference(logits.grad(), want) < 1e-6);
  CHECK_THROWS_AS(token_logprobs(logits, targets.to(torch::kInt)), qerl::Error);
  CHECK_THROWS_AS(token_logprobs(logits, targets.slice(1, 0, 3)), qerl::Error);
}

// ------------------------------------------------------------- lr schedule

TEST_CASE("lr_at: warm-up, then constant / linear / cosine at the middle and the end") {
  const double base = 0.1;
  const int64_t warmup = 10, total = 110;  // 100 decay steps after warm-up
  for (auto schedule : {LrSchedule::constant, LrSchedule::linear, LrSchedule::cosine}) {
    // Warm-up: base * (step + 1) / 10.
    CHECK(lr_at(schedule, base, 0, warmup, total) == doctest::Approx(0.01));
    CHECK(lr_at(schedule, base, 4, warmup, total) == doctest::Approx(0.05));
    CHECK(lr_at(schedule, base, 9, warmup, total) == doctest::Approx(0.1));
    // First step after warm-up: progress 0, full rate.
    CHECK(lr_at(schedule, base, 10, warmup, total) == doctest::Approx(0.1));
  }
  CHECK(lr_at(LrSchedule::constant, base, 60, warmup, total) == doctest::Approx(0.1));
  CHECK(lr_at(LrSchedule::constant, base, 109, warmup, total) == doctest::Approx(0.1));
  // linear: base * (110 - step) / 100
  CHECK(lr_at(LrSchedule::linear, base, 60, warmup, total) == doctest::Approx(0.05));
  CHECK(lr_at(LrSchedule::linear, base, 109, warmup, total) == doctest::Approx(0.001));
  CHECK(lr_at(LrSchedule::linear, base, 110, warmup, total) == doctest::Approx(0.0));
  CHECK(lr_at(LrSchedule::linear, base, 500, warmup, total) == doctest::Approx(0.0));  // clamped, not negative
  // cosine: base * 0.5 * (1 + cos(pi * (step - 10) / 100))
  // step 35: progress 0.25 -> 0.05 * (1 + 0.70710678) = 0.085355339
  CHECK(lr_at(LrSchedule::cosine, base, 35, warmup, total) == doctest::Approx(0.085355339));
  CHECK(lr_at(LrSchedule::cosine, base, 60, warmup, total) == doctest::Approx(0.05));  // progress 0.5
  CHECK(lr_at(LrSchedule::cosine, base, 110, warmup, total) == doctest::Approx(0.0));
  CHECK(lr_at(LrSchedule::cosine, base, 109, warmup, total) ==
        doctest::Approx(0.05 * (1 + std::cos(3.14159265358979 * 0.99))));
  // No warm-up: step 0 is at full rate; linear: 0.1 * 110 / 110.
  CHECK(lr_at(LrSchedule::linear, base, 0, 0, total) == doctest::Approx(0.1));
  CHECK(lr_at(LrSchedule::linear, base, 55, 0, total) == doctest::Approx(0.05));
}

TEST_CASE("lr schedule names and invalid steps") {
  CHECK(qerl::parse_enum<LrSchedule>("constant") == LrSchedule::constant);
  CHECK(qerl::parse_enum<LrSchedule>("linear") == LrSchedule::linear);
  CHECK(qerl::parse_enum<LrSchedule>("cosine") == LrSchedule::cosine);
  CHECK_FALSE(qerl::parse_enum<LrSchedule>("Cosine").has_value());
  CHECK_THROWS_AS(lr_at(LrSchedule::linear, 0.1, -1, 0, 10), qerl::Error);
  CHECK_THROWS_AS(lr_at(LrSchedule::linear, 0.1, 0, -1, 10), qerl::Error);
}

// ---------------------------------------------------------------- grad clip

TEST_CASE("clip_grad_norm by hand: norm of {3, 4} and {12} is 13") {
  // sqrt(3^2 + 4^2 + 12^2) = sqrt(169) = 13
  auto a = param_with_grad(torch::tensor({3.f, 4.f, 0.f}));
  auto b = param_with_grad(torch::tensor({12.f}));
  const auto no_grad = torch::ones({4}, torch::requires_grad());  // ignored: no .grad
  CHECK(clip_grad_norm({a, b, no_grad}, /*max_norm=*/20) == doctest::Approx(13));
  CHECK(largest_difference(a.grad(), torch::tensor({3.f, 4.f, 0.f})) == 0);  // under the limit: untouched
  CHECK(clip_grad_norm({a, b}, /*max_norm=*/0) == doctest::Approx(13));      // 0 = do not clip
  CHECK(largest_difference(b.grad(), torch::tensor({12.f})) == 0);

  // Clip to 6.5: every gradient is halved (6.5 / 13), and the norm before clipping is returned.
  CHECK(clip_grad_norm({a, b}, /*max_norm=*/6.5) == doctest::Approx(13));
  CHECK(largest_difference(a.grad(), torch::tensor({1.5f, 2.f, 0.f})) < 1e-6);
  CHECK(largest_difference(b.grad(), torch::tensor({6.f})) < 1e-6);
  CHECK(clip_grad_norm({no_grad}, 1.0) == 0);
}

TEST_CASE("clip_grad_norm matches a manual norm on random gradients and keeps their direction") {
  torch::manual_seed(23);
  std::vector<torch::Tensor> params, originals;
  for (auto shape : std::vector<std::vector<int64_t>>{{7, 5}, {13}, {2, 3, 4}}) {
    originals.push_back(torch::randn(shape) * 3);
    params.push_back(param_with_grad(originals.back()));
  }
  params.push_back(param_with_grad(torch::randn({6}).to(torch::kBFloat16)));  // low-precision grads count too
  originals.push_back(params.back().grad().clone());
  double sum_squares = 0;
  for (const auto& g : originals) {
    const auto d = g.to(torch::kDouble).flatten();
    for (int64_t i = 0; i < d.numel(); ++i) sum_squares += d[i].item<double>() * d[i].item<double>();
  }
  const double manual = std::sqrt(sum_squares);
  const double max_norm = manual / 4;
  CHECK(clip_grad_norm(params, max_norm) == doctest::Approx(manual).epsilon(1e-5));
  double clipped_squares = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const double tolerance = params[i].scalar_type() == torch::kBFloat16 ? 1e-2 : 1e-6;  // bf16 keeps ~3 digits
    CHECK(largest_difference(params[i].grad(), originals[i].to(torch::kDouble) * (max_norm / manual)) <
          tolerance * max_norm);
    clipped_squares += params[i].grad().to(torch::kDouble).square().sum().item<double>();
  }
  CHECK(std::sqrt(clipped_squares) == doctest::Approx(max_norm).epsilon(1e-2));  // bf16 rounding
}

TEST_CASE("clip_grad_norm: a non-finite norm is returned and the gradients are left alone") {
  for (float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    CAPTURE(bad);
    auto a = param_with_grad(torch::tensor({1.f, bad}));
    auto b = param_with_grad(torch::tensor({5.f, 5.f}));
    const double norm = clip_grad_norm({a, b}, /*max_norm=*/1.0);
    CHECK_FALSE(std::isfinite(norm));
    CHECK(b.grad()[0].item<float>() == 5.f);
    CHECK(a.grad()[0].item<float>() == 1.f);
  }
}

// ---------------------------------------------------------- CUDA vs CPU

#ifdef QERL_CUDA
TEST_CASE("every rl/ function gives on CUDA what it gives on CPU, and stays on the GPU") {
  if (!torch::cuda::is_available()) {
    WARN_MESSAGE(false, "CUDA build without a visible GPU: CUDA parity not checked");
    return;
  }
  const torch::Device gpu(torch::kCUDA);
  // Same values on both devices; the result must live on the device of the inputs.
  const auto same = [&](const torch::Tensor& cpu, const torch::Tensor& cuda, double tolerance) {
    CHECK(cuda.is_cuda());
    CHECK(largest_difference(cpu, cuda.cpu()) <= tolerance);
  };
  torch::manual_seed(31);

  const auto ids = torch::randint(0, 6, {40}, torch::kLong) * 13 - 20;
  const auto rewards = torch::randn({40});
  for (bool norm_by_std : {true, false}) {
    same(group_advantages(rewards, ids, norm_by_std), group_advantages(rewards.to(gpu), ids.to(gpu), norm_by_std),
         1e-5);
  }

  const int64_t batch = 6, seq = 12;
  const auto old = -torch::rand({batch, seq}) * 3;
  const auto logprobs = old + torch::randn({batch, seq}) * 0.3;
  const auto advantages = torch::randn({batch});
  auto mask = (torch::arange(seq).unsqueeze(0) < torch::randint(0, seq + 1, {batch, 1})).to(torch::kFloat);
  for (auto agg : {LossAgg::token_mean, LossAgg::seq_mean_token_mean, LossAgg::seq_mean_token_sum}) {
    CAPTURE(static_cast<int>(agg));
    same(aggregate(logprobs, mask, agg), aggregate(logprobs.to(gpu), mask.to(gpu), agg), 1e-6);
    same(aggregate(logprobs, mask, agg, 17), aggregate(logprobs.to(gpu), mask.to(gpu), agg, 17), 1e-6);

    auto cpu_lp = logprobs.clone().requires_grad_(true);
    auto gpu_lp = logprobs.to(gpu).requires_grad_(true);
    const auto cpu_terms = clipped_policy_loss(cpu_lp, old, advantages, mask, 0.2, 0.28, agg);
    const auto gpu_terms = clipped_policy_loss(gpu_lp, old.to(gpu), advantages.to(gpu), mask.to(gpu), 0.2, 0.28, agg);
    cpu_terms.loss.backward();
    gpu_terms.loss.backward();
    same(cpu_terms.loss, gpu_terms.loss, 1e-6);
    same(cpu_terms.clipfrac, gpu_terms.clipfrac, 1e-6);
    same(cpu_terms.approx_kl, gpu_terms.approx_kl, 1e-6);
    same(cpu_lp.grad(), gpu_lp.grad(), 1e-6);
  }
  same(masked_mean(logprobs, mask), masked_mean(logprobs.to(gpu), mask.to(gpu).to(torch::kBool)), 1e-6);
  for (auto estimator : {KlEstimator::k1, KlEstimator::k3}) {
    same(kl_penalty(logprobs, old, estimator), kl_penalty(logprobs.to(gpu), old.to(gpu), estimator), 1e-6);
  }

  const auto logits = torch::randn({3, 5, 101}) * 3;
  const auto targets = torch::randint(0, 101, {3, 5}, torch::kLong);
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    const auto typed = logits.to(dtype);
    same(token_logprobs(typed, targets), token_logprobs(typed.to(gpu), targets.to(gpu)), 1e-5);
    same(token_entropy(typed), token_entropy(typed.to(gpu)), 1e-5);
  }

  const auto grad_a = torch::randn({9, 4}), grad_b = torch::randn({7});
  std::vector<torch::Tensor> cpu_params{param_with_grad(grad_a), param_with_grad(grad_b)};
  std::vector<torch::Tensor> gpu_params{param_with_grad(grad_a.to(gpu)), param_with_grad(grad_b.to(gpu))};
  const double cpu_norm = clip_grad_norm(cpu_params, 1.0);
  CHECK(clip_grad_norm(gpu_params, 1.0) == doctest::Approx(cpu_norm).epsilon(1e-6));
  same(cpu_params[0].grad(), gpu_params[0].grad(), 1e-6);
  same(cpu_params[1].grad(), gpu_params[1].grad(), 1e-6);
}
#endif  // QERL_CUDA
