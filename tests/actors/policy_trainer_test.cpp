// The learner's update loops run without a pipeline (PolicyTrainer): one
// GRPO step on a tiny random MoE moves every parameter as Adam's first step
// does on an independently computed gradient (log-softmax of the model's
// logits over prompt + response, group advantages by hand, token-mean
// surrogate), gradient accumulation over micro-batches gives the update of
// the whole batch, the fp32 masters of a bf16 policy are what the
// optimizer steps, and the reported metrics equal their hand computation.
#include <doctest/doctest.h>

#include <torch/types.h>

#include <cmath>

#include "actors/payloads.hpp"
#include "actors/policy_trainer.hpp"
#include "tests/actors/test_batches.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl;

namespace {

// groups x members rows, every prompt 5 tokens (no padding: the reference
// gradient below runs one plain forward), responses of 2..6 tokens.
std::shared_ptr<actors::RolloutBatch> trainer_batch(int64_t groups, int64_t members, uint64_t seed) {
  auto batch = actors::testing::grouped_batch(
      groups, members, /*R=*/6, /*vocab=*/97, seed, [](int64_t) { return 5; },
      [](int64_t row) { return 2 + (row * 3) % 5; });
  batch->temperature = 1.0;
  return batch;
}

actors::Scores trainer_scores(int64_t rows, uint64_t seed) {
  torch::manual_seed(seed);
  actors::Scores scores;
  scores.rewards = torch::randint(0, 2, {rows}, torch::kFloat) + torch::rand({rows}) * 0.1;
  return scores;
}

actors::TrainerSettings grpo_settings() {
  actors::TrainerSettings s;
  s.algorithm.name = rl::Advantage::grpo;
  s.algorithm.norm_adv_by_std = true;
  s.algorithm.lr = 1e-3;
  s.algorithm.adam_beta1 = 0.9;
  s.algorithm.adam_beta2 = 0.999;
  s.algorithm.adam_eps = 1e-12;
  s.algorithm.clip_low = 0.2;
  s.algorithm.clip_high = 0.28;
  s.algorithm.loss_agg = rl::LossAgg::token_mean;
  s.algorithm.ppo_epochs = 1;
  s.algorithm.max_grad_norm = 0;  // no clipping: the update is Adam's first step on the raw gradient
  s.total_steps = 10;
  return s;
}

std::vector<std::string> param_names(models::CausalLMImpl& lm) {
  std::vector<std::string> out;
  for (const auto& item : lm.named_parameters()) out.push_back(item.key());
  return out;
}

std::vector<torch::Tensor> param_copies(models::CausalLMImpl& lm) {
  std::vector<torch::Tensor> out;
  for (const auto& p : lm.parameters()) out.push_back(p.detach().clone());
  return out;
}

// One RL step of a trainer on `a` (settings_a) and one on `b` (settings_b),
// same batch and scores: their metrics.
std::pair<std::map<std::string, double>, std::map<std::string, double>> step_both(
    models::CausalLM a, const actors::TrainerSettings& settings_a, models::CausalLM b,
    const actors::TrainerSettings& settings_b, const actors::RolloutBatch& batch, const actors::Scores& scores) {
  actors::PolicyTrainer ta(a, a->parameters(), param_names(*a), settings_a, nullptr, {});
  actors::PolicyTrainer tb(b, b->parameters(), param_names(*b), settings_b, nullptr, {});
  std::pair<std::map<std::string, double>, std::map<std::string, double>> metrics;
  ta.rl_step(batch, scores, nullptr, 0, 0.0, metrics.first);
  tb.rl_step(batch, scores, nullptr, 0, 0.0, metrics.second);
  return metrics;
}

// How far two trained copies of a model ended apart (`diff`) and how far
// the first moved from the initial parameters `start` (`moved`): largest
// absolute elements over every parameter.
struct Divergence {
  double diff = 0, moved = 0;
};
Divergence divergence(models::CausalLMImpl& a, models::CausalLMImpl& b, models::CausalLMImpl& start) {
  const auto pa = param_copies(a), pb = param_copies(b), p0 = param_copies(start);
  Divergence d;
  for (size_t i = 0; i < pa.size(); ++i) {
    d.diff = std::max(d.diff, (pa[i] - pb[i]).abs().max().item<double>());
    d.moved = std::max(d.moved, (pa[i] - p0[i]).abs().max().item<double>());
  }
  return d;
}

// d/dθ of -(1/N) Σ_i adv_i Σ_t logp(token_t | prefix): the GRPO surrogate's
// gradient at ratio 1, computed from the model's full forward.
std::vector<torch::Tensor> reference_gradient(models::CausalLMImpl& lm, const actors::RolloutBatch& batch,
                                              const torch::Tensor& rewards) {
  const int64_t B = batch.size(), P = batch.prompt_width, R = batch.response_width();
  // Group advantages by hand: (r - mean_g) / (std_g + 1e-6), std unbiased as GRPO's.
  torch::Tensor adv = torch::zeros({B});
  for (int64_t g = 0; g * 4 < B; ++g) {
    const torch::Tensor r = rewards.slice(0, g * 4, g * 4 + 4);
    adv.slice(0, g * 4, g * 4 + 4).copy_((r - r.mean()) / (r.std() + 1e-6));
  }
  models::ForwardArgs args;
  args.input_ids = batch.tokens;
  args.attention_mask = batch.attention_mask.to(torch::kLong);
  const torch::Tensor logits = lm.forward(args).logits.to(torch::kFloat);               // [B, P + R, V]
  const torch::Tensor logp = torch::log_softmax(logits.slice(1, P - 1, P + R - 1), -1);  // predicts columns P..P+R-1
  const torch::Tensor token_logp = logp.gather(2, batch.tokens.slice(1, P, P + R).unsqueeze(2)).squeeze(2);
  const torch::Tensor mask = batch.response_mask.to(torch::kFloat);
  const torch::Tensor loss = -(token_logp * mask * adv.unsqueeze(1)).sum() / mask.sum();
  lm.zero_grad();
  loss.backward();
  return actors::testing::take_gradients(lm);
}

}  // namespace

TEST_CASE("PolicyTrainer: one GRPO step = Adam's first step on the independently computed gradient") {
  auto lm = models::testing::tiny_model("qwen3_moe", /*seed=*/41);
  const auto batch = trainer_batch(/*groups=*/3, /*members=*/4, /*seed=*/42);
  const auto scores = trainer_scores(batch->size(), 43);
  const auto gradient = reference_gradient(*lm, *batch, scores.rewards);
  const auto before = param_copies(*lm);
  actors::PolicyTrainer trainer(lm, lm->parameters(), param_names(*lm), grpo_settings(), nullptr, {});
  std::map<std::string, double> metrics;
  trainer.set_learning_rate(0, metrics);
  trainer.rl_step(*batch, scores, nullptr, /*step=*/0, 0.0, metrics);
  // Adam's first step (bias-corrected): Δθ = -lr · g / (|g| + eps) = -lr · sign(g) where g ≠ 0.
  const auto after = param_copies(*lm);
  int64_t checked = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    const torch::Tensor g = gradient[i];
    const torch::Tensor moved = (after[i] - before[i]) / -1e-3;
    const torch::Tensor sure = g.abs() > 1e-7;  // far from 0: the sign is not a rounding accident
    CHECK(torch::allclose(moved.masked_select(sure), g.sign().masked_select(sure), /*rtol=*/0, /*atol=*/1e-3));
    checked += sure.sum().item<int64_t>();
  }
  CHECK(checked > 1000);
  CHECK(metrics.at("actor/lr") == doctest::Approx(1e-3));
  CHECK(metrics.at("actor/pg_clipfrac") == 0.0);  // ratio 1 everywhere
  CHECK(std::abs(metrics.at("actor/ppo_kl")) < 1e-7);
  double grad_norm = 0;
  for (const auto& g : gradient) grad_norm += g.square().sum().item<double>();
  CHECK(metrics.at("actor/grad_norm") == doctest::Approx(std::sqrt(grad_norm)).epsilon(1e-4));
}

TEST_CASE("PolicyTrainer: micro-batches accumulate to the whole batch's update") {
  const auto batch = trainer_batch(/*groups=*/2, /*members=*/4, /*seed=*/52);
  const auto scores = trainer_scores(batch->size(), 53);
  auto whole = models::testing::tiny_model("qwen3_moe", /*seed=*/51);
  auto micro = models::testing::tiny_model("qwen3_moe", /*seed=*/51);
  auto settings = grpo_settings();
  // eps >> |g|: Adam's first step is then -lr g / (|g| + eps), close to linear in g,
  // so the summation order of the accumulated gradient moves it by rounding only.
  settings.algorithm.adam_eps = 1.0;
  settings.algorithm.lr = 1.0;
  auto micro_settings = settings;
  micro_settings.micro_batch_size = 3;  // not a divisor of 8: a ragged last micro-batch
  const auto [ma, mb] = step_both(whole, settings, micro, micro_settings, *batch, scores);
  const Divergence d = divergence(*whole, *micro, *models::testing::tiny_model("qwen3_moe", /*seed=*/51));
  CHECK(d.moved > 1e-4);
  CHECK(d.diff < 1e-4 * d.moved);
  CHECK(ma.at("actor/entropy") == doctest::Approx(mb.at("actor/entropy")).epsilon(1e-5));
  CHECK(ma.at("actor/grad_norm") == doctest::Approx(mb.at("actor/grad_norm")).epsilon(1e-4));
}

TEST_CASE("PolicyTrainer: activation checkpointing gives the same update and metrics") {
  const auto batch = trainer_batch(/*groups=*/2, /*members=*/4, /*seed=*/72);
  const auto scores = trainer_scores(batch->size(), 73);
  auto plain = models::testing::tiny_model("qwen2_moe", /*seed=*/71);
  auto checkpointed = models::testing::tiny_model("qwen2_moe", /*seed=*/71);
  checkpointed->set_activation_checkpointing(true);
  auto settings = grpo_settings();
  settings.micro_batch_size = 3;
  const auto [ma, mb] = step_both(plain, settings, checkpointed, settings, *batch, scores);
  const Divergence d = divergence(*plain, *checkpointed, *models::testing::tiny_model("qwen2_moe", /*seed=*/71));
  CHECK(d.moved > 1e-4);
  CHECK(d.diff <= 1e-6 * d.moved);
  CHECK(ma.at("actor/grad_norm") == doctest::Approx(mb.at("actor/grad_norm")).epsilon(1e-6));
  CHECK(ma.at("actor/entropy") == doctest::Approx(mb.at("actor/entropy")).epsilon(1e-6));
}

TEST_CASE("PolicyTrainer: a bf16 policy is stepped through fp32 masters, rounded back into it") {
  auto lm = models::testing::tiny_model("qwen3_moe", /*seed=*/61, torch::kBFloat16);
  const auto batch = trainer_batch(/*groups=*/2, /*members=*/4, /*seed=*/62);
  const auto scores = trainer_scores(batch->size(), 63);
  actors::PolicyTrainer trainer(lm, lm->parameters(), param_names(*lm), grpo_settings(), nullptr, {});
  REQUIRE(trainer.masters().active());
  std::map<std::string, double> metrics;
  trainer.rl_step(*batch, scores, nullptr, 0, 0.0, metrics);
  const auto masters = trainer.masters().tensors();
  int64_t compared = 0;
  for (const auto& item : lm->named_parameters()) {
    const torch::Tensor& master = masters.at(item.key());
    REQUIRE((master.scalar_type() == torch::kFloat));
    CHECK(torch::equal(item.value(), master.to(torch::kBFloat16)));
    ++compared;
  }
  CHECK(compared == static_cast<int64_t>(masters.size()));
}
