// Stage `rollout`: samples samples_per_prompt responses per prompt with its
// own copy of the policy. New weights arrive on the `weights` back-edge and
// are copied in before generation starts, so a step never samples with a
// half-updated model; the batch records the version that sampled it.
// Sampling is seeded by (run.seed, step, replica), so the step is the whole
// RNG state; the current weights are checkpointed for resume.
#include <algorithm>
#include <fstream>

#include "actors/aqn.hpp"
#include "actors/payloads.hpp"
#include "actors/policy.hpp"
#include "actors/sampling_batch.hpp"
#include "actors/stage_factories.hpp"
#include "actors/stage_log.hpp"
#include "dsl/pipeline_spec.hpp"
#include "models/io/safetensors.hpp"
#include "models/nn/weights.hpp"
#include "models/quant/quantize_model.hpp"
#include "runtime/stage.hpp"

namespace qerl::actors {
namespace {

class RolloutStage final : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& context) override {
    spec_ = context.pipeline;
    replica_ = context.replica;
    const auto& stage = *context.stage;
    models::LoadedModel policy = open_policy(*spec_, stage_device(context), model_dtype(*spec_));
    lm_ = policy.lm;
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
    config_.capture_routing = spec_->router_replay.mode != "disabled" && lm_->config().is_moe();
    max_batch_size_ = stage.option<int64_t>("max_batch_size");
    const auto& aqn = spec_->aqn;
    if (aqn.enabled && (aqn.apply_to == "rollout" || aqn.apply_to == "both")) {
      aqn_ = std::make_unique<AqnNoise>(aqn, *lm_);
      for (const auto& p : aqn_->unmatched())
        if (replica_ == 0) log_warn(context.logger, "aqn: pattern \"" + p + "\" matches no module");
    }
    packed_ = open_packed_base(*spec_, policy);
    if (packed_ && replica_ == 0) log_quant_summary(context.logger, packed_->summary(), quant_spec_of(*spec_));
    if (spec_->quantization.train == "lora") {
      lora_ = std::make_unique<models::LoraAdapters>(*lm_, lora_config_of(*spec_), lora_seed(*spec_));
      lora_->set_training(false);  // no adapter dropout while sampling
    }
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    runtime::StepOutput out;
    if (input.has("weights")) {
      const auto update = input.get<WeightsUpdate>("weights");
      if (update->version != version_) {
        const bool dense = update->format != "lora-only";  // LoRA-only: the base is frozen
        if (dense && aqn_) aqn_->restore();  // updates may cover only some tensors: the rest must be clean
        apply_update(*update, *lm_, packed_.get(), lora_.get());
        if (dense) weights_clean_ = true;
        version_ = update->version;
      }
    }
    if (aqn_) add_noise(input.step, out.metrics);
    const auto prompts = input.get<PromptBatch>("prompts");
    if (packed_) {
      // The sampler computes with the codes of the weights it now holds:
      // Linears changed by a full update or an AQN draw are packed again.
      packed_->repack();
      if (const auto sqnr = packed_->sqnr_db()) out.metrics["quant/sqnr_db"] = *sqnr;
      if (!packed_->inputs_calibrated()) calibrate_inputs(*packed_, prompts->prompt_ids, tokens_->pad_token_id, lm_->device());
    }
    models::GenerationConfig config = config_;
    config.seed = step_seed(spec_->run.seed, input.step, /*stream=*/100 + replica_);
    config.max_new_tokens = capped_new_tokens(*spec_, prompts->prompt_ids, config.max_new_tokens);
    SampledBatch sampled = sample_batch(*lm_, tokens_->tokenizer, prompts->prompt_ids, config, max_batch_size_);
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
    out.weight_version = version_;
    out.ports["samples"] = std::move(sampled.batch);
    return out;
  }

  // The weights this replica samples with (they may lag the learner's by
  // the back-edge staleness, so they are saved here, not taken from it):
  // the dense weights (not with LoRA: its base is model.path's, frozen), the
  // codes and W4A4 input scales of the packed base (so a resumed run samples
  // with the same codes, whatever packed them), the adapters.
  void save_state(const std::filesystem::path& dir) override {
    if (aqn_) aqn_->restore();  // save the clean weights; the next step redraws its noise
    weights_clean_ = true;
    noised_version_ = -1;
    if (lora_) {
      models::write_safetensors(dir / "lora.safetensors", lora_->tensors());
    } else {
      models::write_safetensors(dir / "weights.safetensors", models::export_weights(*lm_));
    }
    if (packed_) models::write_safetensors(dir / "packed.safetensors", packed_->packed_tensors());
    std::ofstream(dir / "version.txt") << version_ << "\n";
  }

  void load_state(const std::filesystem::path& dir) override {
    const auto require = [&](const char* name) {
      const auto file = dir / name;
      if (!std::filesystem::exists(file)) throw Error("checkpoint " + file.string() + " is missing");
      return models::read_safetensors(file).tensors;
    };
    if (aqn_) aqn_->restore();
    if (lora_) {
      lora_->load(require("lora.safetensors"));
    } else {
      apply_parameters(*lm_, require("weights.safetensors"));
    }
    if (packed_) {
      // QAT: the codes came from the learner and stay as they were; other
      // bases repack deterministically from the weights (LoRA: model.path's)
      // and take only the W4A4 input scales calibrated on the first batch.
      const auto stored = require("packed.safetensors");
      if (spec_->quantization.train == "qat") {
        packed_->load_packed(stored);
      } else {
        packed_->load_input_scales(stored);
      }
    }
    weights_clean_ = true;
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
    const bool redraw = version_ != noised_version_ || sigma != noised_sigma_;
    if (redraw) {
      // New full weights arrived clean; otherwise the model still holds the last draw.
      if (!weights_clean_) aqn_->restore();
      aqn_->capture_clean();
      weights_clean_ = false;
      applied_rms_ = aqn_->apply(sigma, step_seed(spec_->run.seed, step, /*stream=*/300 + replica_));
      noised_version_ = version_;
      noised_sigma_ = sigma;
    }
    metrics["aqn/sigma"] = sigma;
    metrics["aqn/applied_rms"] = applied_rms_;
  }

  const dsl::PipelineSpec* spec_ = nullptr;
  int replica_ = 0;
  models::CausalLM lm_{nullptr};
  std::unique_ptr<TokenizerInfo> tokens_;
  models::GenerationConfig config_;
  int64_t max_batch_size_ = 0;
  int64_t version_ = 0;
  std::unique_ptr<AqnNoise> aqn_;
  std::unique_ptr<models::PackedBase> packed_;
  bool weights_clean_ = true;  // no AQN draw on the weights the model holds
  std::unique_ptr<models::LoraAdapters> lora_;
  int64_t noised_version_ = -1;
  double noised_sigma_ = -1;
  double applied_rms_ = 0;
};

}  // namespace

std::unique_ptr<runtime::Stage> make_rollout_stage() { return std::make_unique<RolloutStage>(); }

}  // namespace qerl::actors
