// AQN: the schedule is 0 in stage 0 and geometric from sigma_start to
// sigma_end over the other stages (hand-computed values); the noise lands
// only on the targeted norm weights, is drawn on the clean copy every time
// (never accumulated), has the requested RMS, is exactly absent at sigma 0,
// and restore() puts the clean weights back bit for bit.
#include <doctest/doctest.h>

#include <cmath>

#include "actors/aqn.hpp"
#include "common/error.hpp"
#include "models/nn/weights.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl;

namespace {

dsl::AqnSpec spec_of(int64_t stages, double start, double end) {
  dsl::AqnSpec aqn;
  aqn.enabled = true;
  aqn.sigma_start = start;
  aqn.sigma_end = end;
  aqn.num_stages = stages;
  aqn.targets = {"re:.*norm$"};
  aqn.layer_types = {dsl::AqnLayerType::rmsnorm};
  aqn.apply_to = dsl::AqnApplyTo::rollout;
  return aqn;
}

// A deep copy: export_weights may share storage with the parameters.
models::TensorMap snapshot(models::CausalLMImpl& lm) {
  models::TensorMap out;
  for (const auto& [name, t] : models::export_weights(lm)) out[name] = t.clone();
  return out;
}

double rms_difference(const models::TensorMap& a, const models::TensorMap& b, bool norms) {
  double squares = 0;
  int64_t count = 0;
  for (const auto& [name, t] : a) {
    const bool is_norm = name.find("norm.weight") != std::string::npos;
    if (is_norm != norms) continue;
    squares += (t.to(torch::kDouble) - b.at(name).to(torch::kDouble)).square().sum().item<double>();
    count += t.numel();
  }
  return count ? std::sqrt(squares / count) : 0.0;
}

}  // namespace

TEST_CASE("aqn_sigma: stage 0 clean, then sigma_start * (end/start)^((j-1)/(K-2))") {
  const auto aqn = spec_of(/*stages=*/10, 1e-2, 1e-4);
  const int64_t steps = 100;  // stages of 10 steps
  CHECK(aqn_sigma(aqn, 0, steps) == 0);
  CHECK(aqn_sigma(aqn, 9, steps) == 0);
  CHECK(aqn_sigma(aqn, 10, steps) == doctest::Approx(1e-2));
  // Stage 5: 1e-2 * (1e-2)^(4/8) = 1e-3.
  CHECK(aqn_sigma(aqn, 55, steps) == doctest::Approx(1e-3));
  CHECK(aqn_sigma(aqn, 99, steps) == doctest::Approx(1e-4));
  CHECK(aqn_sigma(spec_of(2, 5e-2, 5e-4), 1, 2) == doctest::Approx(5e-2));  // K = 2: one noisy stage
  auto off = aqn;
  off.enabled = false;
  CHECK(aqn_sigma(off, 50, steps) == 0);
}

TEST_CASE("AQN noise: only norm weights move, by sigma, on a clean copy; sigma 0 and restore are exact") {
  auto lm = models::testing::tiny_model("qwen3_moe", /*seed=*/2);
  const auto clean = snapshot(*lm);
  models::WeightNoise noise(actors::aqn_noise_targets(spec_of(10, 1e-2, 1e-4)), *lm);
  // qwen3_moe: input and post-attention norms plus q_norm / k_norm per layer (3 layers), and the final norm.
  CHECK(noise.num_tensors() == 3 * 4 + 1);
  noise.capture_clean();

  const double sigma = 0.05;
  const double first = noise.apply(sigma, /*seed=*/7);
  const auto noisy = snapshot(*lm);
  CHECK(first == doctest::Approx(sigma).epsilon(0.15));
  CHECK(rms_difference(noisy, clean, /*norms=*/true) == doctest::Approx(first).epsilon(1e-6));
  CHECK(rms_difference(noisy, clean, /*norms=*/false) == 0);

  // A second draw starts from the clean copy again: still sigma from clean, not sigma * sqrt(2).
  const double second = noise.apply(sigma, /*seed=*/8);
  CHECK(second == doctest::Approx(sigma).epsilon(0.15));
  CHECK(rms_difference(snapshot(*lm), noisy, true) > 0.5 * sigma);  // a different draw

  CHECK(noise.apply(0, 9) == 0);
  CHECK(rms_difference(snapshot(*lm), clean, true) == 0);
  noise.apply(sigma, 10);
  noise.restore();
  CHECK(rms_difference(snapshot(*lm), clean, true) == 0);
}

TEST_CASE("AQN noise: exclude removes targets; a target list that matches nothing is an error") {
  auto lm = models::testing::tiny_model("qwen3_moe", /*seed=*/2);
  auto aqn = spec_of(10, 1e-2, 1e-4);
  aqn.exclude = {"re:.*(q|k)_norm$"};
  CHECK(models::WeightNoise(actors::aqn_noise_targets(aqn), *lm).num_tensors() == 3 * 2 + 1);
  aqn.targets = {"re:.*nothing_here$"};
  CHECK_THROWS_AS(models::WeightNoise(actors::aqn_noise_targets(aqn), *lm), qerl::Error);
  aqn.targets = {"re:.*q_proj$"};
  aqn.exclude = {};
  aqn.layer_types = {dsl::AqnLayerType::linear};
  CHECK(models::WeightNoise(actors::aqn_noise_targets(aqn), *lm).num_tensors() == 3);
}
