// Stage `eval`: every `every` steps (and after the last one) the greedy
// accuracy of the current policy on the held-out split, val/accuracy. The
// policy arrives from weight_sync each step; at step 0 the initial policy
// is evaluated first (val/initial_accuracy), so one run shows before/after.
#include <algorithm>

#include "actors/bulk_transfer.hpp"
#include "actors/payloads.hpp"
#include "actors/policy.hpp"
#include "actors/sampling_batch.hpp"
#include "actors/stage_factories.hpp"
#include "actors/stage_log.hpp"
#include "actors/task_data.hpp"
#include "dsl/pipeline_spec.hpp"
#include "runtime/stage.hpp"
#include "tasks/answer.hpp"

namespace qerl::actors {
namespace {

class EvalStage final : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& context) override {
    spec_ = context.pipeline;
    logger_ = context.logger;
    const auto& stage = *context.stage;
    every_ = stage.option<int64_t>("every");
    at_start_ = stage.option<bool>("at_start");
    limits_ = generation_limits(stage, stage_device(context), torch::elementSize(model_dtype(*spec_)));
    // Evaluate what the rollout samples with: the same quantized weights (no noise).
    bulk::note_device(stage_device(context));  // where weights sent over NCCL arrive
    engine_ = open_sampling_engine(*spec_, stage_device(context), /*with_aqn=*/false, /*logger=*/nullptr);
    tokens_ = std::make_unique<TokenizerInfo>(open_tokenizer(*spec_));
    config_.max_new_tokens = stage.option<int64_t>("max_new_tokens");
    config_.sampling.temperature = 0;  // greedy
    config_.stop.eos_token_ids = tokens_->eos_token_ids;
    config_.pad_token_id = tokens_->pad_token_id;
    const TaskData data = open_task_data(*spec_);
    for (int64_t index : data.split.heldout) {
      const tasks::Problem problem = data.source->get(index);
      const auto ids = tokens_->tokenizer.encode(format_prompt(spec_->data.prompt_template, problem.question));
      prompts_.emplace_back(ids.begin(), ids.end());
      answers_.push_back(problem.answer);
    }
    if (prompts_.empty()) throw Error("stage '" + stage.name + "': data.heldout_size is 0, nothing to evaluate");
    size_t longest = 0;
    for (const auto& p : prompts_) longest = std::max(longest, p.size());
    if (static_cast<int64_t>(longest) >= spec_->model.max_seq_len)
      throw Error("stage '" + stage.name + "': a held-out prompt has " + std::to_string(longest) +
                  " tokens, model.max_seq_len is " + std::to_string(spec_->model.max_seq_len));
    config_.max_new_tokens = capped_new_tokens(*spec_, prompts_, config_.max_new_tokens);
    engine_->prepare(prompts_, tokens_->pad_token_id);  // W4A4: input scales from the held-out prompts
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    runtime::StepOutput out;
    if (first_call_ && input.step == 0 && at_start_) out.metrics["val/initial_accuracy"] = accuracy(out);
    first_call_ = false;
    if (input.has("weights")) {
      const auto update = input.get<WeightsUpdate>("weights");
      engine_->load_update(update->format, *update->tensors);
      engine_->prepare(prompts_, tokens_->pad_token_id);
    }
    const bool last = input.step + 1 == spec_->run.steps;
    if ((input.step + 1) % every_ == 0 || last) {
      out.metrics["val/accuracy"] = accuracy(out);
      log_info(logger_, "after step " + std::to_string(input.step + 1) + ": val/accuracy " +
                            std::to_string(out.metrics["val/accuracy"]) + " on " + std::to_string(prompts_.size()) +
                            " held-out problems");
    }
    return out;
  }

 private:
  double accuracy(runtime::StepOutput& out) {
    const SampledBatch sampled = sample_batch(*engine_, tokens_->tokenizer, prompts_, config_, limits_);
    double correct = 0;
    for (size_t i = 0; i < prompts_.size(); ++i) correct += tasks::is_correct(sampled.batch->responses[i], answers_[i]);
    out.metrics["val/response_length"] =
        static_cast<double>(sampled.generated_tokens) / static_cast<double>(prompts_.size());
    return correct / static_cast<double>(prompts_.size());
  }

  const dsl::PipelineSpec* spec_ = nullptr;
  std::shared_ptr<spdlog::logger> logger_;
  int64_t every_ = 10;
  bool at_start_ = true;
  bool first_call_ = true;
  GenerationLimits limits_;
  std::unique_ptr<models::SamplingEngine> engine_;
  std::unique_ptr<TokenizerInfo> tokens_;
  models::GenerationConfig config_;
  std::vector<std::vector<int64_t>> prompts_;
  std::vector<int64_t> answers_;
};

}  // namespace

std::unique_ptr<runtime::Stage> make_eval_stage() { return std::make_unique<EvalStage>(); }

}  // namespace qerl::actors
