// What every model-holding stage does the same way: open the pipeline's
// policy (checkpoint or seeded random init) on the stage's device in the
// model dtype, read the tokenizer and its special ids, and move weights in
// and out as HF-named tensor maps (the PolicyUpdate / WeightsUpdate content).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/payloads.hpp"
#include "models/nn/causal_lm.hpp"
#include "models/quant/compressed_tensors.hpp"
#include "models/quant/lora.hpp"
#include "models/quant/quantize_model.hpp"
#include "models/tokenizer/tokenizer.hpp"

namespace qerl::dsl {
struct PipelineSpec;
}
namespace qerl::runtime {
struct StageContext;
}

namespace spdlog {
class logger;
}

namespace qerl::actors {

// The stage's first device ("cuda:N" or "cpu"; cpu when it has no slot).
torch::Device stage_device(const runtime::StageContext& context);
// model.dtype as a torch dtype.
torch::ScalarType model_dtype(const dsl::PipelineSpec& spec);

// model.init = checkpoint: the folder's weights (a compressed-tensors
// folder: the dequantized codes, the codes kept for open_packed_base);
// random: HF-style init of its config.json seeded by run.seed. The model is
// in eval mode.
models::LoadedModel open_policy(const dsl::PipelineSpec& spec, torch::Device device, torch::ScalarType dtype);

// The packed base of [quantization] over `policy` (null for scheme "none"):
// a compressed-tensors policy keeps its stored codes (quantization.scheme
// and mode must match the checkpoint's: qerl::Error otherwise), any other
// is packed from its weights.
std::unique_ptr<models::PackedBase> open_packed_base(const dsl::PipelineSpec& spec, models::LoadedModel& policy);

// Copies a weight update into a sampling copy of the policy (rollout,
// eval): "full" sets every parameter (the base repacks what changed at its
// next repack()), "packed" sets the dense parameters and the base's codes,
// "lora-only" the adapters. qerl::Error when the format does not fit the
// copy (no base for packed codes, no adapters for LoRA tensors).
void apply_update(const WeightsUpdate& update, models::CausalLMImpl& lm, models::PackedBase* base,
                  models::LoraAdapters* lora);

struct TokenizerInfo {
  models::Tokenizer tokenizer;
  std::vector<int64_t> eos_token_ids;  // config.json, generation_config.json, tokenizer_config.json
  int64_t pad_token_id = 0;            // config pad, else the first EOS
};
TokenizerInfo open_tokenizer(const dsl::PipelineSpec& spec);

// Detached clones of every parameter (on its device): a version's snapshot.
std::shared_ptr<const TensorMap> snapshot_parameters(models::CausalLMImpl& lm);
// Copies a full set of parameters in (cast to the model's dtype/device);
// qerl::Error on a missing or mis-shaped tensor.
void apply_parameters(models::CausalLMImpl& lm, const TensorMap& tensors);

// A QAT learner's update: its packed Linears as codes (pack_weights under
// the same fused scales its forward uses), every other parameter dense.
std::shared_ptr<const TensorMap> snapshot_packed(models::CausalLMImpl& lm, const std::vector<models::QuantTarget>& targets,
                                                 const models::QuantSpec& spec);

// max_new_tokens capped so that the longest of `prompts` plus its response
// fits model.max_seq_len (at least 1; data skips prompts that leave no room).
int64_t capped_new_tokens(const dsl::PipelineSpec& spec, const std::vector<std::vector<int64_t>>& prompts,
                          int64_t max_new_tokens);

// The model side of [quantization]: scheme, W4A4, ignore list, fused scales
// (qerl::Error for a group_size other than the scheme's).
models::QuantSpec quant_spec_of(const dsl::PipelineSpec& spec);

// [lora] as adapter settings (qerl::Error when quantization.train = "lora"
// and lora.rank < 1), and the seed of the adapters' A matrices: the same in
// learner, rollout and eval, so every copy starts equal.
models::LoraConfig lora_config_of(const dsl::PipelineSpec& spec);
uint64_t lora_seed(const dsl::PipelineSpec& spec);

// One info line on what a quantization plan did (counts, bytes before and
// after) and a warning per ignore pattern that matched no Linear.
void log_quant_summary(const std::shared_ptr<spdlog::logger>& logger, const models::QuantSummary& summary,
                       const models::QuantSpec& spec);

// W4A4: calibrates the input global scales on one prefill of `prompts`
// (left-padded with `pad`); W4A16 bases ignore it.
void calibrate_inputs(models::PackedBase& base, const std::vector<std::vector<int64_t>>& prompts, int64_t pad,
                      torch::Device device);

// Settings the pipeline declares that this run will not use (e.g. [lora]
// without quantization.train = "lora"), one phrase each; empty when there
// are none. The learner warns with them once per run, so a run never
// passes a full-parameter update off as an adapter one.
std::vector<std::string> unused_declarations(const dsl::PipelineSpec& spec);

// A counter-based seed for (run seed, step, stream): independent streams
// without stored RNG state, so a resumed run draws what it would have.
uint64_t step_seed(int64_t run_seed, int64_t step, uint64_t stream);

}  // namespace qerl::actors
