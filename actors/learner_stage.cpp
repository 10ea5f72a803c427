// Stage `learner`: owns the trainable policy (full parameters, QAT, or LoRA
// on a frozen packed base) and runs one update per step through a
// PolicyTrainer (actors/policy_trainer.hpp: mode = rl, GRPO / PPO-style;
// mode = sft, cross-entropy on demonstrations). Each step publishes a
// snapshot with version = updates applied, in the format the rollout
// takes (full, packed codes for QAT, LoRA-only); checkpoints are
// actors/learner_checkpoint.hpp's.
#include <filesystem>

#include "actors/aqn.hpp"
#include "actors/learner_checkpoint.hpp"
#include "actors/payloads.hpp"
#include "actors/policy.hpp"
#include "actors/policy_trainer.hpp"
#include "actors/stage_factories.hpp"
#include "actors/stage_options.hpp"
#include "actors/stage_log.hpp"
#include "dsl/pipeline_spec.hpp"
#include "models/quant/lora.hpp"
#include "runtime/stage.hpp"

namespace qerl::actors {
namespace {

namespace fs = std::filesystem;

class LearnerStage final : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& context) override {
    spec_ = context.pipeline;
    logger_ = context.logger;
    sft_ = context.stage->choice_option<LearnerMode>("mode") == LearnerMode::sft;
    const torch::Device device = stage_device(context);
    warn_if_slow_cpu_bf16(*spec_, device, logger_);
    const bool lora = spec_->quantization.train == dsl::QuantTrain::lora;
    models::LoadedModel policy = open_policy(*spec_, device, model_dtype(*spec_), /*packed_next=*/lora);
    lm_ = policy.lm;
    const models::QuantSpec& quant = spec_->quantization.quant;
    std::vector<torch::Tensor> params;
    std::vector<std::string> names;
    if (lora) {
      // QeRL: a frozen base (packed when a scheme is set; a compressed-tensors
      // model.path keeps its codes) and trainable adapters only.
      base_ = open_packed_base(*spec_, policy, base_residency(spec_->aqn, !sft_ && spec_->aqn.on_training()), device);
      if (base_ && context.replica == 0) log_quant_summary(logger_, base_->summary(), quant);
      for (auto& p : lm_->parameters()) p.requires_grad_(false);
      lora_ = std::make_unique<models::LoraAdapters>(*lm_, lora_config_of(*spec_), lora_seed(*spec_));
      names = lora_->parameter_names();
      params = lora_->parameters();
      if (context.replica == 0)
        log_info(logger_, "LoRA: " + std::to_string(lora_->num_adapters()) + " adapters, " +
                              std::to_string(lora_->num_parameters()) + " trainable parameters (rank " +
                              std::to_string(spec_->lora.rank) + ")");
    } else {
      for (auto& item : lm_->named_parameters()) names.push_back(item.key()), params.push_back(item.value());
    }
    if (spec_->quantization.train == dsl::QuantTrain::qat && quant.scheme != models::QuantScheme::none) {
      // QAT: the forward sees the rollout's quantized weights, the optimizer updates the dense ones.
      const auto summary = models::install_qat(*lm_, quant);
      if (context.replica == 0) log_quant_summary(logger_, summary, quant);
      // Weight sync sends the codes the QAT forward computes with, not the dense weights.
      qat_targets_ = models::plan_quantization(*lm_, quant, nullptr);
    }
    if (!sft_ && spec_->aqn.on_training())
      aqn_ = std::make_unique<models::WeightNoise>(aqn_noise_targets(spec_->aqn), *lm_);
    TrainerSettings settings;
    settings.algorithm = spec_->algorithm;
    settings.micro_batch_size = context.stage->option<int64_t>("micro_batch_size");
    lm_->set_activation_checkpointing(context.stage->option<bool>("activation_checkpointing"));
    settings.replay = spec_->router_replay.mode;
    settings.run_seed = spec_->run.seed;
    settings.total_steps = spec_->run.steps;
    auto logger = logger_;
    trainer_ = std::make_unique<PolicyTrainer>(lm_, std::move(params), std::move(names), std::move(settings),
                                               aqn_.get(), [logger](const std::string& m) { log_warn(logger, m); });
    if (trainer_->masters().active() && context.replica == 0)
      log_info(logger_, std::string("mixed precision: the optimizer steps fp32 masters of the ") +
                            enum_name(spec_->model.dtype) + " policy's " +
                            std::to_string(trainer_->masters().trainable().size()) + " parameters");
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    runtime::StepOutput out;
    const auto batch = input.get<RolloutBatch>("samples");
    trainer_->set_learning_rate(input.step, out.metrics);
    if (sft_) {
      trainer_->sft_step(*batch, out.metrics);
    } else {
      if (!input.has("scores")) throw Error("mode = \"rl\" needs the `scores` input (connect a reward stage)");
      const auto scores = input.get<Scores>("scores");
      std::shared_ptr<const RefLogprobs> ref;
      if (spec_->algorithm.kl_coef > 0) {
        if (!input.has("ref_logprobs")) throw Error("algorithm.kl_coef > 0 needs the `ref_logprobs` input");
        ref = input.get<RefLogprobs>("ref_logprobs");
        if (!ref->logprobs.defined()) throw Error("the reference stage sent no log-probs");
      }
      const double sigma = aqn_ ? aqn_sigma(spec_->aqn, input.step, spec_->run.steps) : 0.0;
      trainer_->rl_step(*batch, *scores, ref.get(), input.step, sigma, out.metrics);
      out.metrics["actor/weight_version"] = static_cast<double>(version_ + 1);
    }
    ++version_;
    auto update = std::make_shared<PolicyUpdate>();
    update->version = version_;
    if (lora_) {
      update->format = WeightsFormat::lora_only;  // the base never changes: only the adapters travel
      update->tensors = std::make_shared<const TensorMap>(lora_->tensors());
    } else if (!qat_targets_.empty()) {
      update->format = WeightsFormat::packed;
      update->tensors = snapshot_packed(*lm_, qat_targets_, spec_->quantization.quant);
    } else {
      update->tensors = snapshot_parameters(*lm_);
    }
    out.weight_version = version_;
    out.ports["params"] = std::move(update);
    return out;
  }

  void save_state(const fs::path& dir) override {
    save_learner_checkpoint(dir, *spec_, *lm_, lora_.get(), *trainer_, version_);
  }

  void load_state(const fs::path& dir) override {
    version_ = load_learner_checkpoint(dir, *lm_, lora_.get(), *trainer_);
  }

 private:
  const dsl::PipelineSpec* spec_ = nullptr;
  std::shared_ptr<spdlog::logger> logger_;
  bool sft_ = false;
  models::CausalLM lm_{nullptr};
  int64_t version_ = 0;
  std::unique_ptr<models::WeightNoise> aqn_;
  std::unique_ptr<models::PackedBase> base_;
  std::vector<models::QuantTarget> qat_targets_;  // QAT: the Linears whose codes weight sync sends
  std::unique_ptr<models::LoraAdapters> lora_;  // train = "lora"
  std::unique_ptr<PolicyTrainer> trainer_;
};

}  // namespace

std::unique_ptr<runtime::Stage> make_learner_stage() { return std::make_unique<LearnerStage>(); }

}  // namespace qerl::actors
