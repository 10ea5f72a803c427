// Stage `reference`: log-probs of the response tokens under the frozen
// initial policy (native routing, no noise, never updated), the anchor of
// the KL penalty. With algorithm.kl_coef = 0 nothing uses them, so the
// stage emits an empty RefLogprobs without loading or running the model.
// weights = "base" scores with the frozen base a LoRA policy trains on
// (4-bit codes when quantization.scheme is set: for a large MoE the
// difference between fitting one GPU or not).
#include "actors/payloads.hpp"
#include "actors/policy.hpp"
#include "actors/response_scoring.hpp"
#include "actors/stage_factories.hpp"
#include "actors/stage_log.hpp"
#include "actors/stage_options.hpp"
#include "common/error.hpp"
#include "dsl/pipeline_spec.hpp"
#include "runtime/stage.hpp"

namespace qerl::actors {
namespace {

class ReferenceStage final : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& context) override {
    micro_batch_ = context.stage->option<int64_t>("micro_batch_size");
    if (context.pipeline->algorithm.kl_coef == 0) {
      log_info(context.logger, "algorithm.kl_coef = 0: reference log-probs are skipped");
      return;
    }
    warn_if_slow_cpu_bf16(*context.pipeline, stage_device(context), context.logger);
    const dsl::PipelineSpec& spec = *context.pipeline;
    const torch::Device device = stage_device(context);
    const bool base = context.stage->choice_option<ReferenceWeights>("weights") == ReferenceWeights::base;
    if (base && spec.quantization.train != dsl::QuantTrain::lora)
      throw Error("stage '" + context.stage->name +
                  "': weights = \"base\" needs quantization.train = \"lora\" (the frozen base the adapters train "
                  "on); this pipeline has train = \"" + std::string(enum_name(spec.quantization.train)) + "\"");
    if (base && spec.quantization.quant.scheme != models::QuantScheme::none) {
      models::LoadedModel policy = open_policy(spec, device, model_dtype(spec), /*packed_next=*/true);
      base_ = open_packed_base(spec, policy, models::Residency::codes_only, device);
      lm_ = policy.lm;
    } else {
      lm_ = open_policy(spec, device, model_dtype(spec)).lm;
    }
    for (auto& p : lm_->parameters()) p.set_requires_grad(false);
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    auto ref = std::make_shared<RefLogprobs>();
    if (lm_) ref->logprobs = response_logprobs(*lm_, *input.get<RolloutBatch>("samples"), micro_batch_);
    runtime::StepOutput out;
    out.ports["ref_logprobs"] = std::move(ref);
    return out;
  }

 private:
  models::CausalLM lm_{nullptr};
  std::unique_ptr<models::PackedBase> base_;  // weights = "base" with a scheme: the codes lm_ computes with
  int64_t micro_batch_ = 0;
};

}  // namespace

std::unique_ptr<runtime::Stage> make_reference_stage() { return std::make_unique<ReferenceStage>(); }

}  // namespace qerl::actors
