// Stage `rollout`: samples samples_per_prompt responses per prompt with its
// own copy of the policy. New weights arrive on the `weights` back-edge and
// are copied in before generation starts, so a step never samples with a
// half-updated model; the batch records the version that sampled it.
// Sampling is seeded by (run.seed, step, replica), so the step is the whole
// RNG state; the current weights are checkpointed for resume. The model,
// its packed base, adapters and AQN noise live in a sampling engine
// (models/engine), chosen by the stage's device.
#include <algorithm>
#include <fstream>

#include "actors/aqn.hpp"
#include "actors/bulk_transfer.hpp"
#include "actors/payloads.hpp"
#include "actors/policy.hpp"
#include "actors/sampling_batch.hpp"
#include "actors/stage_factories.hpp"
#include "actors/stage_log.hpp"
#include "dsl/pipeline_spec.hpp"
#include "runtime/stage.hpp"

namespace qerl::actors {
namespace {

class RolloutStage final : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& context) override {
    spec_ = context.pipeline;
    replica_ = context.replica;
    const auto& stage = *context.stage;
    bulk::note_device(stage_device(context));  // where weights sent over NCCL arrive
    engine_ = open_sampling_engine(*spec_, stage_device(context), /*with_aqn=*/true,
                                   replica_ == 0 ? context.logger : nullptr);
    tokens_ = std::make_unique<TokenizerInfo>(open_tokenizer(*spec_));
    config_.max_new_tokens = stage.option<int64_t>("max_new_tokens");
    config_.sampling.temperature = stage.option<double>("temperature");
    config_.sampling.top_p = stage.option<double>("top_p");
    config_.sampling.top_k = stage.option<int64_t>("top_k");
    config_.stop.eos_token_ids = tokens_->eos_token_ids;
    config_.stop.stop_strings = stage.option<std::vector<std::string>>("stop");
    if (!config_.stop.stop_strings.empty()) {
      const models::Tokenizer tokenizer = tokens_->tokenizer;
      config_.stop.decode = [tokenizer](const std::vector<int64_t>& ids) {
        return tokenizer.decode(std::vector<models::TokenId>(ids.begin(), ids.end()));
      };
    }
    config_.pad_token_id = tokens_->pad_token_id;
    config_.capture_routing = rl::captures_routes(spec_->router_replay.mode) && engine_->model_config().is_moe();
    limits_ = generation_limits(stage, stage_device(context), torch::elementSize(model_dtype(*spec_)));
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    runtime::StepOutput out;
    if (input.has("weights")) {
      const auto update = input.get<WeightsUpdate>("weights");
      if (update->version != version_) {
        engine_->load_update(update->format, *update->tensors);
        version_ = update->version;
        if (update->beside) out.metrics["weight_sync/transfer_s"] = update->transfer_s;
      }
    }
    if (engine_->has_noise_targets()) add_noise(input.step, out.metrics);
    const auto prompts = input.get<PromptBatch>("prompts");
    if (const auto sqnr = engine_->prepare(prompts->prompt_ids, tokens_->pad_token_id)) out.metrics["quant/sqnr_db"] = *sqnr;
    models::GenerationConfig config = config_;
    config.seed = step_seed(spec_->run.seed, input.step, /*stream=*/100 + replica_);
    config.max_new_tokens = capped_new_tokens(*spec_, prompts->prompt_ids, config.max_new_tokens);
    SampledBatch sampled = sample_batch(*engine_, tokens_->tokenizer, prompts->prompt_ids, config, limits_);
    auto& batch = *sampled.batch;
    batch.answers = prompts->answers;
    batch.group_ids = prompts->group_ids;
    batch.weight_version = version_;

    const auto lengths = batch.response_mask.sum(1).to(torch::kFloat);
    out.metrics["response_length/mean"] = lengths.mean().item<double>();
    out.metrics["response_length/max"] = lengths.max().item<double>();
    double clipped = 0;
    for (uint8_t t : batch.truncated) clipped += t;
    out.metrics["response_length/clip_ratio"] = batch.size() ? clipped / static_cast<double>(batch.size()) : 0.0;
    out.metrics["rollout/tokens_per_s"] = sampled.seconds > 0 ? sampled.generated_tokens / sampled.seconds : 0.0;
    out.metrics["rollout/weight_version"] = static_cast<double>(version_);
    out.metrics["rollout/chunk_rows"] = static_cast<double>(sampled.chunk_rows);
    out.weight_version = version_;
    out.ports["samples"] = std::move(sampled.batch);
    return out;
  }

  // The weights this replica samples with (they may lag the learner's by
  // the back-edge staleness, so they are saved here, not taken from it),
  // clean: the next step redraws its noise.
  void save_state(const std::filesystem::path& dir) override {
    engine_->save(dir);
    noised_version_ = -1;
    std::ofstream(dir / "version.txt") << version_ << "\n";
  }

  void load_state(const std::filesystem::path& dir) override {
    engine_->load(dir);
    noised_version_ = -1;
    std::ifstream in(dir / "version.txt");
    if (!(in >> version_)) throw Error("checkpoint " + (dir / "version.txt").string() + " is missing or unreadable");
  }

 private:
  // AQN: a fresh draw on the clean weights whenever they change (every
  // weight sync) or the schedule moves to another sigma; aqn/applied_rms is
  // measured from the weights the sampler then holds.
  void add_noise(int64_t step, std::map<std::string, double>& metrics) {
    const double sigma = aqn_sigma(spec_->aqn, step, spec_->run.steps);
    if (version_ != noised_version_ || sigma != noised_sigma_) {
      applied_rms_ = engine_->draw_noise(sigma, step_seed(spec_->run.seed, step, /*stream=*/300 + replica_));
      noised_version_ = version_;
      noised_sigma_ = sigma;
    }
    metrics["aqn/sigma"] = sigma;
    metrics["aqn/applied_rms"] = applied_rms_;
  }

  const dsl::PipelineSpec* spec_ = nullptr;
  int replica_ = 0;
  std::unique_ptr<models::SamplingEngine> engine_;
  std::unique_ptr<TokenizerInfo> tokens_;
  models::GenerationConfig config_;
  GenerationLimits limits_;
  int64_t version_ = 0;
  int64_t noised_version_ = -1;
  double noised_sigma_ = -1;
  double applied_rms_ = 0;
};

}  // namespace

std::unique_ptr<runtime::Stage> make_rollout_stage() { return std::make_unique<RolloutStage>(); }

}  // namespace qerl::actors
