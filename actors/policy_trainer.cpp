// The learner's update loops (see policy_trainer.hpp).
#include "actors/policy_trainer.hpp"

#include <cmath>

#include "actors/policy.hpp"
#include "actors/response_scoring.hpp"
#include "actors/router_replay.hpp"
#include "common/error.hpp"
#include "rl/advantages.hpp"
#include "rl/fused_adamw.hpp"
#include "rl/grad_clip.hpp"
#include "rl/kl.hpp"
#include "rl/loss_agg.hpp"
#include "rl/lr_schedule.hpp"
#include "rl/policy_loss.hpp"
#include "tasks/split.hpp"

namespace qerl::actors {

// Weighted means of per-micro-batch metrics. Values that live on the
// device are summed there (in float64, as the host would sum them), so
// the step reads them all at once in write().
class PolicyTrainer::Means {
 public:
  void add(const std::string& name, double value, double weight) {
    auto& sum = sums_[name];
    sum.host += value * weight;
    sum.weight += weight;
  }
  // value: a 0-dim tensor on any device.
  void add(const std::string& name, const torch::Tensor& value, double weight) {
    auto& sum = sums_[name];
    const torch::Tensor term = value.detach().to(torch::kDouble) * weight;
    sum.device = sum.device.defined() ? sum.device + term : term;
    sum.weight += weight;
  }
  // A 0-dim tensor read with the rest at write().
  void set(const std::string& name, const torch::Tensor& value) { extra_[name] = value.detach().to(torch::kDouble); }

  // The one host read of the step.
  void write(std::map<std::string, double>& metrics) const {
    std::vector<std::string> names;
    std::vector<torch::Tensor> values;
    for (const auto& [name, sum] : sums_)
      if (sum.device.defined()) names.push_back(name), values.push_back(sum.device.to(torch::kCPU).reshape({1}));
    for (const auto& [name, value] : extra_) names.push_back(name), values.push_back(value.to(torch::kCPU).reshape({1}));
    const torch::Tensor read = values.empty() ? torch::Tensor() : torch::cat(values);
    std::map<std::string, double> device_values;
    for (size_t i = 0; i < names.size(); ++i) device_values[names[i]] = read[static_cast<int64_t>(i)].item<double>();
    for (const auto& [name, sum] : sums_) {
      const double total = sum.device.defined() ? device_values.at(name) : sum.host;
      metrics[name] = sum.weight > 0 ? total / sum.weight : 0.0;
    }
    for (const auto& [name, value] : extra_) metrics[name] = device_values.at(name);
  }

 private:
  struct Sum {
    double host = 0;
    torch::Tensor device;  // float64, undefined until a tensor is added
    double weight = 0;
  };
  std::map<std::string, Sum> sums_;
  std::map<std::string, torch::Tensor> extra_;
};

PolicyTrainer::PolicyTrainer(models::CausalLM lm, std::vector<torch::Tensor> params, std::vector<std::string> names,
                             TrainerSettings settings, models::WeightNoise* noise,
                             std::function<void(const std::string&)> warn)
    : lm_(std::move(lm)),
      settings_(std::move(settings)),
      masters_(std::move(params), std::move(names)),
      noise_(noise),
      warn_(std::move(warn)) {
  const auto& alg = settings_.algorithm;
  optimizer_ = std::make_unique<torch::optim::AdamW>(masters_.trainable(),
                                                     torch::optim::AdamWOptions(alg.lr)
                                                         .betas({alg.adam_beta1, alg.adam_beta2})
                                                         .eps(alg.adam_eps)
                                                         .weight_decay(alg.weight_decay));
}

void PolicyTrainer::set_learning_rate(int64_t step, std::map<std::string, double>& metrics) {
  const auto& alg = settings_.algorithm;
  const double lr = rl::lr_at(alg.lr_schedule, alg.lr, step, alg.warmup_steps, settings_.total_steps);
  for (auto& group : optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  metrics["actor/lr"] = lr;
}

int64_t PolicyTrainer::micro_size(int64_t mini) const {
  const int64_t micro = settings_.micro_batch_size;
  return micro > 0 ? std::min(micro, mini) : mini;
}

// Clips, steps the optimizer (unless the gradient is not finite: the one
// read of an optimizer step) and records the pre-clip norm.
void PolicyTrainer::optimizer_step(Means& means) {
  masters_.take_grads();
  const double norm = rl::clip_grad_norm(masters_.trainable(), settings_.algorithm.max_grad_norm);
  means.add("actor/grad_norm", norm, 1);
  if (std::isfinite(norm)) {
    // On a GPU, AdamW in ATen's multi-tensor kernel (a few launches, not
    // about ten per tensor); on the CPU LibTorch's own step, which
    // measured 6.5x faster there than the fused CPU kernel (bench/optimizer_bench).
    const auto& trainable = masters_.trainable();
    if (!trainable.empty() && trainable.front().is_cuda())
      rl::fused_adamw_step(*optimizer_);
    else
      optimizer_->step();
    masters_.write_back();
  } else {
    ++skipped_updates_;
    if (warn_)
      warn_("non-finite gradient norm: optimizer step skipped (" + std::to_string(skipped_updates_) + " so far)");
  }
  masters_.zero_grads();
}

void PolicyTrainer::sft_step(const RolloutBatch& batch, std::map<std::string, double>& metrics) {
  const int64_t B = batch.size();
  const int64_t mini_size = settings_.algorithm.mini_batch_size;
  const int64_t mini = mini_size > 0 ? std::min(mini_size, B) : B;
  const torch::Tensor cpu_mask = batch.response_mask.to(torch::kFloat);  // counts on the host, no device read
  const torch::Tensor mask = cpu_mask.to(lm_->device());
  Means means;
  masters_.zero_grads();
  for (int64_t m = 0; m < B; m += mini) {
    const int64_t m_end = std::min(B, m + mini);
    const double tokens = cpu_mask.slice(0, m, m_end).sum().item<double>();
    torch::Tensor mini_loss;  // the micro-batch terms sum to the mini-batch's token mean
    for (int64_t u = m; u < m_end; u += micro_size(mini)) {
      const torch::Tensor rows = torch::arange(u, std::min(m_end, u + micro_size(mini)));
      const torch::Tensor row_mask = mask.index_select(0, rows.to(mask.device()));
      const auto scored = score_responses(*lm_, batch, rows, /*with_entropy=*/false);
      const torch::Tensor loss = -rl::aggregate(scored.logprobs, row_mask, rl::LossAgg::token_mean, tokens);
      loss.backward();
      const torch::Tensor term = loss.detach().to(torch::kDouble);
      mini_loss = mini_loss.defined() ? mini_loss + term : term;
    }
    if (mini_loss.defined()) means.add("sft/loss", mini_loss, 1);
    optimizer_step(means);
  }
  means.write(metrics);
  metrics["sft/tokens"] = cpu_mask.sum().item<double>();
}

torch::Tensor PolicyTrainer::advantages(const RolloutBatch& batch, const Scores& scores) const {
  const auto& alg = settings_.algorithm;
  const torch::Tensor groups = torch::tensor(batch.group_ids, torch::kLong);
  if (alg.name == rl::Advantage::grpo) return rl::group_advantages(scores.rewards, groups, alg.norm_adv_by_std);
  // ppo (no critic): the whole batch is one group, whitened.
  return rl::group_advantages(scores.rewards, torch::zeros_like(groups), /*norm_by_std=*/true);
}

// Log-probs of pi_old over the whole batch (no gradients), in micro-batches;
// the recording pass of router replay.
torch::Tensor PolicyTrainer::old_logprobs(const RolloutBatch& batch, RouteBook& routes) {
  torch::NoGradGuard no_grad;
  const int64_t B = batch.size();
  const int64_t micro = settings_.micro_batch_size;
  const int64_t step = micro > 0 ? micro : std::max<int64_t>(B, 1);
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < B; begin += step) {
    const torch::Tensor rows = torch::arange(begin, std::min(B, begin + step));
    auto scored = score_responses(*lm_, batch, rows, /*with_entropy=*/false, routes.request(rows, true));
    routes.record(rows, scored.routing);
    parts.push_back(scored.logprobs);
  }
  return parts.empty() ? torch::zeros({0, batch.response_width()}) : torch::cat(parts, 0);
}

void PolicyTrainer::rl_step(const RolloutBatch& batch, const Scores& scores, const RefLogprobs* ref, int64_t step,
                            double noise_sigma, std::map<std::string, double>& metrics) {
  const auto& alg = settings_.algorithm;
  const torch::Device device = lm_->device();
  const int64_t B = batch.size();
  if (scores.rewards.size(0) != B)
    throw Error("scores hold " + std::to_string(scores.rewards.size(0)) + " rewards for " + std::to_string(B) +
                " samples");
  const int64_t mini = alg.mini_batch_size > 0 ? std::min(alg.mini_batch_size, B) : B;
  const torch::Tensor cpu_mask = batch.response_mask.to(torch::kFloat);  // token counts on the host
  const torch::Tensor mask = cpu_mask.to(device);                         // [B, R]
  const torch::Tensor adv = advantages(batch, scores).to(device);         // [B]
  const torch::Tensor ref_logprobs = ref ? ref->logprobs.to(device) : torch::Tensor();
  // With one optimizer step per batch the policy is still pi_old during
  // the update's own forward, so that forward's detached log-probs are
  // exactly the recomputed old log-probs; otherwise recompute up front.
  const bool fused_old = alg.ppo_epochs == 1 && mini == B;
  RouteBook routes;
  if (settings_.replay != rl::ReplayMode::disabled) {
    if (batch.routing.defined()) {
      routes = RouteBook(settings_.replay, batch, device);
    } else if (!warned_no_routes_) {
      if (warn_)
        warn_(std::string("router_replay.mode = \"") + enum_name(settings_.replay) +
              "\" but the rollout sent no routes (a dense model?): routing natively");
      warned_no_routes_ = true;
    }
  }
  Means means;
  // AQN on the learner (apply_to = training | both): every forward of this
  // step sees a fresh draw on the clean weights, which are back in place
  // before each optimizer step.
  int64_t draws = 0;
  auto add_noise = [&] {
    if (!noise_) return;
    noise_->capture_clean();
    metrics["aqn/learner_applied_rms"] =
        noise_->apply(noise_sigma, step_seed(settings_.run_seed, step, 400 + draws++));
    metrics["aqn/learner_sigma"] = noise_sigma;
  };
  auto remove_noise = [&] {
    if (noise_) noise_->restore();
  };
  torch::Tensor old_all;
  if (!fused_old) {
    add_noise();
    old_all = old_logprobs(batch, routes).to(device);
    remove_noise();
  }

  torch::Tensor corr_sum;
  const bool have_sampler_logprobs = batch.rollout_logprobs.defined();
  const torch::Tensor sampler = have_sampler_logprobs ? batch.rollout_logprobs.to(device) : torch::Tensor();
  for (int64_t epoch = 0; epoch < alg.ppo_epochs; ++epoch) {
    // Epochs after the first visit the rows in a seeded shuffle (whole batch
    // when mini == B, so the order does not matter there).
    const torch::Tensor order =
        epoch == 0 ? torch::arange(B)
                   : torch::tensor(tasks::seeded_permutation(B, step_seed(settings_.run_seed, step, 200), epoch),
                                   torch::kLong);
    for (int64_t m = 0; m < B; m += mini) {
      const torch::Tensor mini_rows = order.slice(0, m, std::min(B, m + mini));
      const double normalizer = alg.loss_agg == rl::LossAgg::token_mean
                                    ? cpu_mask.index_select(0, mini_rows).sum().item<double>()
                                    : static_cast<double>(mini_rows.size(0));
      torch::Tensor mini_pg_loss;  // micro-batch terms sum to the mini-batch's loss
      add_noise();
      for (int64_t u = 0; u < mini_rows.size(0); u += micro_size(mini)) {
        const torch::Tensor rows = mini_rows.slice(0, u, std::min(mini_rows.size(0), u + micro_size(mini)));
        const torch::Tensor d_rows = rows.to(device);
        const torch::Tensor row_mask = mask.index_select(0, d_rows);
        const double tokens = cpu_mask.index_select(0, rows).sum().item<double>();
        const bool recording = fused_old && epoch == 0;  // this pass is also the old-log-prob pass
        const auto scored = score_responses(*lm_, batch, rows, /*with_entropy=*/true, routes.request(rows, recording));
        if (recording) routes.record(rows, scored.routing);
        const torch::Tensor old = fused_old ? scored.logprobs.detach() : old_all.index_select(0, d_rows);
        auto terms = rl::clipped_policy_loss(scored.logprobs, old, adv.index_select(0, d_rows), row_mask,
                                             alg.clip_low, alg.clip_high, alg.loss_agg, normalizer);
        torch::Tensor loss = terms.loss;
        const torch::Tensor pg = terms.loss.detach().to(torch::kDouble);
        mini_pg_loss = mini_pg_loss.defined() ? mini_pg_loss + pg : pg;
        if (ref) {
          const torch::Tensor kl = rl::kl_penalty(scored.logprobs, ref_logprobs.index_select(0, d_rows),
                                                  alg.kl_estimator);
          loss = loss + alg.kl_coef * rl::aggregate(kl, row_mask, alg.loss_agg, normalizer);
          means.add("actor/kl_loss", rl::masked_mean(kl.detach(), row_mask), tokens);
        }
        const torch::Tensor entropy = rl::masked_mean(scored.entropy, row_mask);
        if (alg.entropy_coef > 0)
          loss = loss - alg.entropy_coef * rl::aggregate(scored.entropy, row_mask, alg.loss_agg, normalizer);
        loss.backward();
        means.add("actor/entropy", entropy, tokens);
        means.add("actor/pg_clipfrac", terms.clipfrac, tokens);
        means.add("actor/ppo_kl", terms.approx_kl, tokens);
        if (epoch == 0 && have_sampler_logprobs) {
          const torch::Tensor corr = ((sampler.index_select(0, d_rows) - old) * row_mask).sum().to(torch::kDouble);
          corr_sum = corr_sum.defined() ? corr_sum + corr : corr;
        }
      }
      if (mini_pg_loss.defined()) means.add("actor/pg_loss", mini_pg_loss, 1);
      remove_noise();
      optimizer_step(means);
    }
  }
  const double tokens = cpu_mask.sum().item<double>();
  if (have_sampler_logprobs)
    means.set("rollout_corr/kl", tokens > 0 && corr_sum.defined() ? corr_sum / tokens : torch::zeros({}, torch::kDouble));
  means.set("critic/advantages/abs_mean", adv.abs().mean());
  means.write(metrics);
  if (routes.active())
    add_routing_metrics(batch, routes.learner_native().to(torch::kCPU), lm_->config().num_experts, metrics);
  if (scores.correct.size() == batch.group_ids.size()) {
    const auto outcomes = rl::group_outcomes(batch.group_ids, scores.correct);
    metrics["critic/groups/solve_none"] = outcomes.solve_none;
    metrics["critic/groups/solve_all"] = outcomes.solve_all;
  }
}

}  // namespace qerl::actors
