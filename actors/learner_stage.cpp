// Stage `learner`: owns the trainable policy and its AdamW optimizer.
// mode = rl: GRPO / PPO-style update of [algorithm] over the step's
// rollouts (group advantages, clipped surrogate with clip-higher, optional
// KL to the reference and entropy bonus; mini-batches, PPO epochs, and
// micro-batches for gradient accumulation). mode = sft: token-mean
// cross-entropy on demonstrations. Each step publishes a parameter
// snapshot with version = updates applied; checkpoints hold the policy (an
// HF folder), the optimizer and the version. Full-parameter training of a
// bf16 / fp16 policy steps fp32 master copies of the parameters (mixed
// precision: an AdamW step far below one bf16 ulp of a weight would round
// away) and writes them, rounded, into the policy after each step.
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "actors/aqn.hpp"
#include "actors/payloads.hpp"
#include "actors/policy.hpp"
#include "actors/response_scoring.hpp"
#include "actors/router_replay.hpp"
#include "actors/stage_factories.hpp"
#include "actors/stage_log.hpp"
#include "dsl/pipeline_spec.hpp"
#include "models/io/safetensors.hpp"
#include "models/nn/weights.hpp"
#include "models/quant/lora.hpp"
#include "models/quant/peft_adapter.hpp"
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
    models::LoadedModel policy = open_policy(*spec_, stage_device(context), model_dtype(*spec_));
    lm_ = policy.lm;
    const models::QuantSpec& quant = spec_->quantization.quant;
    if (spec_->quantization.train == dsl::QuantTrain::lora) {
      // QeRL: a frozen base (packed when a scheme is set; a compressed-tensors
      // model.path keeps its codes) and trainable adapters only.
      base_ = open_packed_base(*spec_, policy, base_residency(spec_->aqn, !sft_ && spec_->aqn.on_training()));
      if (base_ && context.replica == 0) log_quant_summary(logger_, base_->summary(), quant);
      for (auto& p : lm_->parameters()) p.requires_grad_(false);
      lora_ = std::make_unique<models::LoraAdapters>(*lm_, lora_config_of(*spec_), lora_seed(*spec_));
      trainable_ = lora_->parameters();
      if (context.replica == 0)
        log_info(logger_, "LoRA: " + std::to_string(lora_->num_adapters()) + " adapters, " +
                              std::to_string(lora_->num_parameters()) + " trainable parameters (rank " +
                              std::to_string(spec_->lora.rank) + ")");
    } else {
      trainable_ = lm_->parameters();
      keep_fp32_masters(context.replica);
    }
    optimizer_ = std::make_unique<torch::optim::AdamW>(
        trainable_, torch::optim::AdamWOptions(alg.lr)
                                .betas({alg.adam_beta1, alg.adam_beta2})
                                .eps(alg.adam_eps)
                                .weight_decay(alg.weight_decay));
    loss_agg_ = alg.loss_agg;
    kl_estimator_ = alg.kl_estimator;
    schedule_ = alg.lr_schedule;
    replay_ = spec_->router_replay.mode;
    if (spec_->quantization.train == dsl::QuantTrain::qat && quant.scheme != models::QuantScheme::none) {
      // QAT: the forward sees the rollout's quantized weights, the optimizer updates the dense ones.
      const auto summary = models::install_qat(*lm_, quant);
      if (context.replica == 0) log_quant_summary(logger_, summary, quant);
      // Weight sync sends the codes the QAT forward computes with, not the dense weights.
      qat_targets_ = models::plan_quantization(*lm_, quant, nullptr);
      qat_spec_ = quant;
    }
    const auto& aqn = spec_->aqn;
    if (!sft_ && aqn.on_training())
      aqn_ = std::make_unique<models::WeightNoise>(aqn_noise_targets(aqn), *lm_);
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
    if (lora_) {
      update->format = WeightsFormat::lora_only;  // the base never changes: only the adapters travel
      update->tensors = std::make_shared<const TensorMap>(lora_->tensors());
    } else if (!qat_targets_.empty()) {
      update->format = WeightsFormat::packed;
      update->tensors = snapshot_packed(*lm_, qat_targets_, qat_spec_);
    } else {
      update->tensors = snapshot_parameters(*lm_);
    }
    out.weight_version = version_;
    out.ports["params"] = std::move(update);
    return out;
  }

  // policy/ is a complete HF folder (weights, config, tokenizer files), so
  // a checkpoint's policy can be used directly as model.path. With LoRA the
  // policy is model.path's frozen base plus adapter/ (a PEFT folder;
  // qerl-merge folds it into the base), so there is no policy/.
  void save_state(const fs::path& dir) override {
    if (!lora_) {
      models::save_causal_lm(dir / "policy", *lm_);
      for (const char* name : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
        const fs::path from = fs::path(spec_->model.path) / name;
        if (fs::exists(from)) fs::copy_file(from, dir / "policy" / name, fs::copy_options::overwrite_existing);
      }
    } else {
      const auto adapters = lora_->tensors();
      models::write_safetensors(dir / "lora.safetensors", adapters);
      // The same adapters as a PEFT folder: PEFT loads it, qerl-merge folds it into model.path.
      models::write_peft_adapter(dir / "adapter", lora_config_of(*spec_), adapters,
                                 fs::absolute(spec_->model.path).lexically_normal().string());
    }
    if (!master_of_.empty()) models::write_safetensors(dir / "master.safetensors", master_tensors());
    torch::save(*optimizer_, (dir / "optimizer.pt").string());
    std::ofstream(dir / "version.txt") << version_ << "\n";
  }

  void load_state(const fs::path& dir) override {
    if (lora_) {
      // The base is frozen: what setup loaded from model.path is what was trained on.
      const fs::path adapters = dir / "lora.safetensors";
      if (!fs::exists(adapters)) throw Error("checkpoint " + adapters.string() + " is missing");
      lora_->load(models::read_safetensors(adapters).tensors);
    } else {
      models::CausalLM policy = models::load_causal_lm(dir / "policy");
      apply_parameters(*lm_, models::export_weights(*policy));
      if (!master_of_.empty()) load_masters(dir / "master.safetensors");
    }
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

  // A policy with parameters below fp32: trainable_ becomes fp32 copies
  // (the optimizer's), master_of_ the policy parameter each one feeds.
  void keep_fp32_masters(int replica) {
    bool low_precision = false;
    for (const auto& p : trainable_) low_precision |= p.scalar_type() != torch::kFloat;
    if (!low_precision) return;
    master_of_ = trainable_;
    for (auto& p : trainable_) p = p.detach().to(torch::kFloat).clone();
    if (replica == 0)
      log_info(logger_, std::string("mixed precision: the optimizer steps fp32 masters of the ") + enum_name(spec_->model.dtype) +
                            " policy's " + std::to_string(trainable_.size()) + " parameters");
  }

  std::map<std::string, torch::Tensor> master_tensors() const {
    std::map<std::string, torch::Tensor> out;
    const auto named = lm_->named_parameters();
    for (size_t i = 0; i < trainable_.size(); ++i) out[named[i].key()] = trainable_[i];
    return out;
  }

  void load_masters(const fs::path& file) {
    if (!fs::exists(file)) throw Error("checkpoint " + file.string() + " is missing");
    const auto tensors = models::read_safetensors(file).tensors;
    const auto named = lm_->named_parameters();
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < trainable_.size(); ++i) {
      const auto found = tensors.find(named[i].key());
      if (found == tensors.end() || !found->second.sizes().equals(trainable_[i].sizes()))
        throw Error("checkpoint " + file.string() + ": no fp32 master " + named[i].key() +
                    " of the policy's shape");
      trainable_[i].copy_(found->second);
      master_of_[i].copy_(trainable_[i]);
    }
  }

  void zero_grads() {
    optimizer_->zero_grad();
    for (auto& p : master_of_) p.mutable_grad().reset();
  }

  // Clips, steps the optimizer (unless the gradient is not finite) and
  // records the pre-clip norm. With fp32 masters, the policy's gradients
  // are taken into them first and the stepped masters rounded back.
  void optimizer_step(MetricMeans& means) {
    for (size_t i = 0; i < master_of_.size(); ++i) {
      const torch::Tensor& grad = master_of_[i].grad();
      trainable_[i].mutable_grad() = grad.defined() ? grad.to(torch::kFloat) : torch::Tensor();
    }
    const double norm = rl::clip_grad_norm(trainable_, spec_->algorithm.max_grad_norm);
    means.add("actor/grad_norm", norm, 1);
    if (std::isfinite(norm)) {
      optimizer_->step();
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < master_of_.size(); ++i) master_of_[i].copy_(trainable_[i]);
    } else {
      ++skipped_updates_;
      log_warn(logger_, "non-finite gradient norm: optimizer step skipped (" + std::to_string(skipped_updates_) +
                            " so far)");
    }
    zero_grads();
  }

  int64_t micro_size(int64_t mini) const { return micro_batch_ > 0 ? std::min(micro_batch_, mini) : mini; }

  void sft_update(const RolloutBatch& batch, std::map<std::string, double>& metrics) {
    const int64_t B = batch.size();
    const int64_t mini = spec_->algorithm.mini_batch_size > 0 ? std::min(spec_->algorithm.mini_batch_size, B) : B;
    const torch::Tensor mask = batch.response_mask.to(lm_->device()).to(torch::kFloat);
    MetricMeans means;
    zero_grads();
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
    if (spec_->algorithm.name == rl::Advantage::grpo)
      return rl::group_advantages(scores.rewards, groups, spec_->algorithm.norm_adv_by_std);
    // ppo (no critic): the whole batch is one group, whitened.
    return rl::group_advantages(scores.rewards, torch::zeros_like(groups), /*norm_by_std=*/true);
  }

  // Routes of one RL step under router_replay.mode: what each forward is
  // asked to do, and what the recording pass saw (the learner's own top-k,
  // for the mismatch metric; under R2 also the routes later replayed).
  struct RouteBook {
    ReplayMode mode = ReplayMode::disabled;
    const RolloutBatch* batch = nullptr;
    torch::Device device{torch::kCPU};
    torch::Tensor recorded;        // [B, P + R] bool: positions with a sampler route
    torch::Tensor learner_native;  // [B, P + R, L, K] int16, filled by the recording pass
    torch::Tensor learner_routes;  // R2: [B, P + R, L, K] int16 routes the learner used then

    bool active() const { return mode != ReplayMode::disabled; }

    models::Routing request(const torch::Tensor& rows, bool recording) const {
      auto pick = [&](const torch::Tensor& t) { return t.index_select(0, rows.to(t.device())).to(device); };
      switch (mode) {
        case ReplayMode::disabled: return models::Routing::native();
        case ReplayMode::r1: return recording ? models::Routing::capture() : models::Routing::native();
        case ReplayMode::r2:
          return recording ? models::Routing::capture()
                           : models::Routing::replay(pick(learner_routes), pick(recorded));
        case ReplayMode::r3: return models::Routing::replay(pick(batch->routing), pick(recorded));
      }
      return models::Routing::native();
    }

    void record(const torch::Tensor& rows, const models::RoutingRecord& seen) {
      if (!active()) return;
      // Under R3 the forward used the sampler's routes; its own choice is native_indices.
      const torch::Tensor own = mode == ReplayMode::r3 ? seen.native_indices : seen.indices;
      if (!own.defined()) throw Error("router replay: the learner's forward returned no routing record");
      const torch::Tensor cpu_rows = rows.to(torch::kCPU);
      if (!learner_native.defined())
        learner_native = torch::zeros({batch->size(), own.size(1), own.size(2), own.size(3)}, torch::kShort);
      learner_native.index_copy_(0, cpu_rows, own.to(torch::kCPU).to(torch::kShort));
      if (mode == ReplayMode::r2) learner_routes = learner_native;
    }
  };

  RouteBook open_route_book(const RolloutBatch& batch) {
    RouteBook book;
    if (replay_ == ReplayMode::disabled) return book;
    if (!batch.routing.defined()) {
      if (!warned_no_routes_)
        log_warn(logger_, std::string("router_replay.mode = \"") + enum_name(replay_) +
                              "\" but the rollout sent no routes (a dense model?): routing natively");
      warned_no_routes_ = true;
      return book;
    }
    book.mode = replay_;
    book.batch = &batch;
    book.device = lm_->device();
    book.recorded = recorded_positions(batch);
    return book;
  }

  // Log-probs of pi_old over the whole batch (no gradients), in micro-batches;
  // the recording pass of router replay.
  torch::Tensor old_logprobs(const RolloutBatch& batch, RouteBook& routes) {
    torch::NoGradGuard no_grad;
    const int64_t B = batch.size();
    const int64_t step = micro_batch_ > 0 ? micro_batch_ : std::max<int64_t>(B, 1);
    std::vector<torch::Tensor> parts;
    for (int64_t begin = 0; begin < B; begin += step) {
      const torch::Tensor rows = torch::arange(begin, std::min(B, begin + step));
      auto scored = score_responses(*lm_, batch, rows, /*with_entropy=*/false, routes.request(rows, true));
      routes.record(rows, scored.routing);
      parts.push_back(scored.logprobs);
    }
    return parts.empty() ? torch::zeros({0, batch.response_width()}) : torch::cat(parts, 0);
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
    RouteBook routes = open_route_book(batch);
    // AQN on the learner (apply_to = training | both): every forward of this
    // step sees a fresh draw on the clean weights, which are back in place
    // before each optimizer step.
    const double sigma = aqn_ ? aqn_sigma(spec_->aqn, step, spec_->run.steps) : 0.0;
    int64_t draws = 0;
    auto add_noise = [&] {
      if (!aqn_) return;
      aqn_->capture_clean();
      metrics["aqn/learner_applied_rms"] = aqn_->apply(sigma, step_seed(spec_->run.seed, step, 400 + draws++));
      metrics["aqn/learner_sigma"] = sigma;
    };
    auto remove_noise = [&] {
      if (aqn_) aqn_->restore();
    };
    torch::Tensor old_all;
    if (!fused_old) {
      add_noise();
      old_all = old_logprobs(batch, routes).to(device);
      remove_noise();
    }

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
        add_noise();
        for (int64_t u = 0; u < mini_rows.size(0); u += micro_size(mini)) {
          const torch::Tensor rows = mini_rows.slice(0, u, std::min(mini_rows.size(0), u + micro_size(mini)));
          const torch::Tensor d_rows = rows.to(device);
          const torch::Tensor row_mask = mask.index_select(0, d_rows);
          const double tokens = row_mask.sum().item<double>();
          const bool recording = fused_old && epoch == 0;  // this pass is also the old-log-prob pass
          const auto scored = score_responses(*lm_, batch, rows, /*with_entropy=*/true, routes.request(rows, recording));
          if (recording) routes.record(rows, scored.routing);
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
        remove_noise();
        optimizer_step(means);
      }
    }
    means.write(metrics);
    if (routes.active()) add_routing_metrics(batch, routes.learner_native, lm_->config().num_experts, metrics);
    const double tokens = mask.sum().item<double>();
    if (have_sampler_logprobs) metrics["rollout_corr/kl"] = tokens > 0 ? corr_sum / tokens : 0.0;
    if (scores.correct.size() == batch.group_ids.size()) {
      const auto outcomes = rl::group_outcomes(batch.group_ids, scores.correct);
      metrics["critic/groups/solve_none"] = outcomes.solve_none;
      metrics["critic/groups/solve_all"] = outcomes.solve_all;
    }
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
  ReplayMode replay_ = ReplayMode::disabled;
  bool warned_no_routes_ = false;
  std::unique_ptr<models::WeightNoise> aqn_;
  std::unique_ptr<models::PackedBase> base_;
  std::vector<models::QuantTarget> qat_targets_;  // QAT: the Linears whose codes weight sync sends
  models::QuantSpec qat_spec_;    // train = "lora" with a scheme: the frozen packed base
  std::unique_ptr<models::LoraAdapters> lora_;  // train = "lora"
  std::vector<torch::Tensor> trainable_;        // what the optimizer updates
  std::vector<torch::Tensor> master_of_;        // mixed precision: the policy parameter of each trainable_
};

}  // namespace

std::unique_ptr<runtime::Stage> make_learner_stage() { return std::make_unique<LearnerStage>(); }

}  // namespace qerl::actors
