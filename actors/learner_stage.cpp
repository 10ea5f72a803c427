// Stage `learner`: owns the trainable policy and its AdamW optimizer.
// mode = rl: GRPO / PPO-style update of [algorithm] over the step's
// rollouts (group advantages, clipped surrogate with clip-higher, optional
// KL to the reference and entropy bonus; mini-batches, PPO epochs, and
// micro-batches for gradient accumulation). mode = sft: token-mean
// cross-entropy on demonstrations. Each step publishes a parameter
// snapshot with version = updates applied; checkpoints hold the policy (an
// HF folder), the optimizer and the version.
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "actors/payloads.hpp"
#include "actors/policy.hpp"
#include "actors/response_scoring.hpp"
#include "actors/stage_factories.hpp"
#include "actors/stage_log.hpp"
#include "dsl/pipeline_spec.hpp"
#include "models/nn/weights.hpp"
#include "rl/advantages.hpp"
#include "rl/grad_clip.hpp"
#include "rl/kl.hpp"
#include "rl/loss_agg.hpp"
#include "rl/lr_schedule.hpp"
#include "rl/policy_loss.hpp"
#include "runtime/stage.hpp"
#include "tasks/split.hpp"

namespace qerl::actors {
namespace {

namespace fs = std::filesystem;

// Token-weighted running means of per-micro-batch metrics.
class MetricMeans {
 public:
  void add(const std::string& name, double value, double weight) {
    auto& [sum, total] = sums_[name];
    sum += value * weight;
    total += weight;
  }
  void write(std::map<std::string, double>& metrics) const {
    for (const auto& [name, st] : sums_) metrics[name] = st.second > 0 ? st.first / st.second : 0.0;
  }

 private:
  std::map<std::string, std::pair<double, double>> sums_;
};

class LearnerStage final : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& context) override {
    spec_ = context.pipeline;
    logger_ = context.logger;
    const auto& alg = spec_->algorithm;
    sft_ = context.stage->option<std::string>("mode") == "sft";
    micro_batch_ = context.stage->option<int64_t>("micro_batch_size");
    lm_ = open_policy(*spec_, stage_device(context), model_dtype(*spec_));
    optimizer_ = std::make_unique<torch::optim::AdamW>(
        lm_->parameters(), torch::optim::AdamWOptions(alg.lr).weight_decay(alg.weight_decay));
    loss_agg_ = rl::parse_loss_agg(alg.loss_agg);
    kl_estimator_ = rl::parse_kl_estimator(alg.kl_estimator);
    schedule_ = rl::parse_lr_schedule(alg.lr_schedule);
    const auto pending = unimplemented_features(*spec_);
    if (!pending.empty() && context.replica == 0) {
      std::string list;
      for (const auto& f : pending) list += (list.empty() ? "" : ", ") + f;
      log_warn(logger_, "declared but not implemented yet: " + list + ". This run samples and trains the " +
                            spec_->model.dtype + " policy unquantized, full-parameter, with native routing");
    }
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    runtime::StepOutput out;
    const auto batch = input.get<RolloutBatch>("samples");
    set_learning_rate(input.step, out.metrics);
    if (sft_) {
      sft_update(*batch, out.metrics);
    } else {
      if (!input.has("scores")) throw Error("mode = \"rl\" needs the `scores` input (connect a reward stage)");
      const auto scores = input.get<Scores>("scores");
      std::shared_ptr<const RefLogprobs> ref;
      if (spec_->algorithm.kl_coef > 0) {
        if (!input.has("ref_logprobs")) throw Error("algorithm.kl_coef > 0 needs the `ref_logprobs` input");
        ref = input.get<RefLogprobs>("ref_logprobs");
        if (!ref->logprobs.defined()) throw Error("the reference stage sent no log-probs");
      }
      rl_update(*batch, *scores, ref.get(), input.step, out.metrics);
    }
    ++version_;
    auto update = std::make_shared<PolicyUpdate>();
    update->version = version_;
    update->tensors = snapshot_parameters(*lm_);
    out.weight_version = version_;
    out.ports["params"] = std::move(update);
    return out;
  }

  // policy/ is a complete HF folder (weights, config, tokenizer files), so
  // a checkpoint's policy can be used directly as model.path.
  void save_state(const fs::path& dir) override {
    models::save_causal_lm(dir / "policy", *lm_);
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
      const fs::path from = fs::path(spec_->model.path) / name;
      if (fs::exists(from)) fs::copy_file(from, dir / "policy" / name, fs::copy_options::overwrite_existing);
    }
    torch::save(*optimizer_, (dir / "optimizer.pt").string());
    std::ofstream(dir / "version.txt") << version_ << "\n";
  }

  void load_state(const fs::path& dir) override {
    models::CausalLM policy = models::load_causal_lm(dir / "policy");
    apply_parameters(*lm_, models::export_weights(*policy));
    const fs::path optimizer = dir / "optimizer.pt";
    if (!fs::exists(optimizer)) throw Error("checkpoint " + optimizer.string() + " is missing");
    try {
      torch::load(*optimizer_, optimizer.string());
    } catch (const c10::Error& e) {
      throw Error("checkpoint " + optimizer.string() + " is unreadable: " + e.what_without_backtrace());
    }
    std::ifstream in(dir / "version.txt");
    if (!(in >> version_)) throw Error("checkpoint " + (dir / "version.txt").string() + " is missing or unreadable");
  }

 private:
  // LR of RL step `step` (warm-up and decay count RL steps, not mini-batches).
  void set_learning_rate(int64_t step, std::map<std::string, double>& metrics) {
    const auto& alg = spec_->algorithm;
    const double lr = rl::lr_at(schedule_, alg.lr, step, alg.warmup_steps, spec_->run.steps);
    for (auto& group : optimizer_->param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    metrics["actor/lr"] = lr;
  }

  // Clips, steps the optimizer (unless the gradient is not finite) and
  // records the pre-clip norm.
  void optimizer_step(MetricMeans& means) {
    const double norm = rl::clip_grad_norm(lm_->parameters(), spec_->algorithm.max_grad_norm);
    means.add("actor/grad_norm", norm, 1);
    if (std::isfinite(norm)) {
      optimizer_->step();
    } else {
      ++skipped_updates_;
      log_warn(logger_, "non-finite gradient norm: optimizer step skipped (" + std::to_string(skipped_updates_) +
                            " so far)");
    }
    optimizer_->zero_grad();
  }

  int64_t micro_size(int64_t mini) const { return micro_batch_ > 0 ? std::min(micro_batch_, mini) : mini; }

  void sft_update(const RolloutBatch& batch, std::map<std::string, double>& metrics) {
    const int64_t B = batch.size();
    const int64_t mini = spec_->algorithm.mini_batch_size > 0 ? std::min(spec_->algorithm.mini_batch_size, B) : B;
    const torch::Tensor mask = batch.response_mask.to(lm_->device()).to(torch::kFloat);
    MetricMeans means;
    optimizer_->zero_grad();
    for (int64_t m = 0; m < B; m += mini) {
      const int64_t m_end = std::min(B, m + mini);
      const double tokens = mask.slice(0, m, m_end).sum().item<double>();
      double mini_loss = 0;  // the micro-batch terms sum to the mini-batch's token mean
      for (int64_t u = m; u < m_end; u += micro_size(mini)) {
        const torch::Tensor rows = torch::arange(u, std::min(m_end, u + micro_size(mini)));
        const torch::Tensor row_mask = mask.index_select(0, rows.to(mask.device()));
        const auto scored = score_responses(*lm_, batch, rows, /*with_entropy=*/false);
        const torch::Tensor loss = -rl::aggregate(scored.logprobs, row_mask, rl::LossAgg::token_mean, tokens);
        loss.backward();
        mini_loss += loss.item<double>();
      }
      means.add("sft/loss", mini_loss, 1);
      optimizer_step(means);
    }
    means.write(metrics);
    metrics["sft/tokens"] = mask.sum().item<double>();
  }

  torch::Tensor advantages(const RolloutBatch& batch, const Scores& scores) const {
    const torch::Tensor groups = torch::tensor(batch.group_ids, torch::kLong);
    if (spec_->algorithm.name == "grpo")
      return rl::group_advantages(scores.rewards, groups, spec_->algorithm.norm_adv_by_std);
    // ppo (no critic): the whole batch is one group, whitened.
    return rl::group_advantages(scores.rewards, torch::zeros_like(groups), /*norm_by_std=*/true);
  }

  void rl_update(const RolloutBatch& batch, const Scores& scores, const RefLogprobs* ref, int64_t step,
                 std::map<std::string, double>& metrics) {
    const auto& alg = spec_->algorithm;
    const torch::Device device = lm_->device();
    const int64_t B = batch.size();
    if (scores.rewards.size(0) != B)
      throw Error("scores hold " + std::to_string(scores.rewards.size(0)) + " rewards for " + std::to_string(B) +
                  " samples");
    const int64_t mini = alg.mini_batch_size > 0 ? std::min(alg.mini_batch_size, B) : B;
    const torch::Tensor mask = batch.response_mask.to(device).to(torch::kFloat);  // [B, R]
    const torch::Tensor adv = advantages(batch, scores).to(device);               // [B]
    const torch::Tensor ref_logprobs = ref ? ref->logprobs.to(device) : torch::Tensor();
    // With one optimizer step per batch the policy is still pi_old during
    // the update's own forward, so that forward's detached log-probs are
    // exactly the recomputed old log-probs; otherwise recompute up front.
    const bool fused_old = alg.ppo_epochs == 1 && mini == B;
    const torch::Tensor old_all = fused_old ? torch::Tensor() : response_logprobs(*lm_, batch, micro_batch_).to(device);

    MetricMeans means;
    double corr_sum = 0;
    const bool have_sampler_logprobs = batch.rollout_logprobs.defined();
    const torch::Tensor sampler = have_sampler_logprobs ? batch.rollout_logprobs.to(device) : torch::Tensor();
    for (int64_t epoch = 0; epoch < alg.ppo_epochs; ++epoch) {
      // Epochs after the first visit the rows in a seeded shuffle (whole batch
      // when mini == B, so the order does not matter there).
      const torch::Tensor order =
          epoch == 0 ? torch::arange(B)
                     : torch::tensor(tasks::seeded_permutation(B, step_seed(spec_->run.seed, step, 200), epoch),
                                     torch::kLong);
      for (int64_t m = 0; m < B; m += mini) {
        const torch::Tensor mini_rows = order.slice(0, m, std::min(B, m + mini));
        const torch::Tensor mini_mask = mask.index_select(0, mini_rows.to(device));
        const double normalizer = loss_agg_ == rl::LossAgg::token_mean ? mini_mask.sum().item<double>()
                                                                       : static_cast<double>(mini_rows.size(0));
        double mini_pg_loss = 0;  // micro-batch terms sum to the mini-batch's loss
        for (int64_t u = 0; u < mini_rows.size(0); u += micro_size(mini)) {
          const torch::Tensor rows = mini_rows.slice(0, u, std::min(mini_rows.size(0), u + micro_size(mini)));
          const torch::Tensor d_rows = rows.to(device);
          const torch::Tensor row_mask = mask.index_select(0, d_rows);
          const double tokens = row_mask.sum().item<double>();
          const auto scored = score_responses(*lm_, batch, rows, /*with_entropy=*/true);
          const torch::Tensor old = fused_old ? scored.logprobs.detach() : old_all.index_select(0, d_rows);
          auto terms = rl::clipped_policy_loss(scored.logprobs, old, adv.index_select(0, d_rows), row_mask,
                                               alg.clip_low, alg.clip_high, loss_agg_, normalizer);
          torch::Tensor loss = terms.loss;
          mini_pg_loss += terms.loss.item<double>();
          if (ref) {
            const torch::Tensor kl = rl::kl_penalty(scored.logprobs, ref_logprobs.index_select(0, d_rows),
                                                    kl_estimator_);
            loss = loss + alg.kl_coef * rl::aggregate(kl, row_mask, loss_agg_, normalizer);
            means.add("actor/kl_loss", rl::masked_mean(kl.detach(), row_mask).item<double>(), tokens);
          }
          const torch::Tensor entropy = rl::masked_mean(scored.entropy, row_mask);
          if (alg.entropy_coef > 0)
            loss = loss - alg.entropy_coef * rl::aggregate(scored.entropy, row_mask, loss_agg_, normalizer);
          loss.backward();
          means.add("actor/entropy", entropy.item<double>(), tokens);
          means.add("actor/pg_clipfrac", terms.clipfrac.item<double>(), tokens);
          means.add("actor/ppo_kl", terms.approx_kl.item<double>(), tokens);
          if (epoch == 0 && have_sampler_logprobs)
            corr_sum += ((sampler.index_select(0, d_rows) - old) * row_mask).sum().item<double>();
        }
        means.add("actor/pg_loss", mini_pg_loss, 1);
        optimizer_step(means);
      }
    }
    means.write(metrics);
    const double tokens = mask.sum().item<double>();
    if (have_sampler_logprobs) metrics["rollout_corr/kl"] = tokens > 0 ? corr_sum / tokens : 0.0;
    metrics["critic/advantages/abs_mean"] = adv.abs().mean().item<double>();
    metrics["actor/weight_version"] = static_cast<double>(version_ + 1);
  }

  const dsl::PipelineSpec* spec_ = nullptr;
  std::shared_ptr<spdlog::logger> logger_;
  bool sft_ = false;
  int64_t micro_batch_ = 0;
  models::CausalLM lm_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  rl::LossAgg loss_agg_ = rl::LossAgg::token_mean;
  rl::KlEstimator kl_estimator_ = rl::KlEstimator::k3;
  rl::LrSchedule schedule_ = rl::LrSchedule::constant;
  int64_t version_ = 0;
  int64_t skipped_updates_ = 0;
};

}  // namespace

std::unique_ptr<runtime::Stage> make_learner_stage() { return std::make_unique<LearnerStage>(); }

}  // namespace qerl::actors
