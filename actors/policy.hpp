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
#include "models/engine/sampling_engine.hpp"
#include "models/nn/causal_lm.hpp"
#include "models/quant/compressed_tensors.hpp"
#include "models/quant/lora.hpp"
#include "models/quant/quantize_model.hpp"
#include "models/tokenizer/tokenizer.hpp"

namespace qerl::dsl {
struct PipelineSpec;
struct AqnSpec;
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

// How many times slower LibTorch's bf16 matrix product is than fp32 on this
// CPU: measured once per process, best of 3 products of 256 x 256 matrices
// (about 75 ms on a CPU without bf16 instructions, far less elsewhere).
double cpu_bf16_matmul_slowdown();
// With model.dtype = "bf16" and `device` the CPU: when the slowdown above is
// more than 8x (measured 113x on an AVX2-only EPYC, where the bf16 shipped
// pipeline ran about 3x slower than on an AVX-512 CPU), says so in one
// warning line per process, suggesting model.dtype = "fp32".
void warn_if_slow_cpu_bf16(const dsl::PipelineSpec& spec, torch::Device device,
                           const std::shared_ptr<spdlog::logger>& logger);

// model.init = checkpoint: the folder's weights (a compressed-tensors
// folder: the dequantized codes, the codes kept for open_packed_base);
// random: HF-style init of its config.json seeded by run.seed. The model is
// in eval mode, on `device`; with `packed_next` a dense model stays on the
// host for open_packed_base, which takes it to `device` quantized (so a
// 4-bit stage never holds the dense model on the GPU; a compressed-tensors
// folder, already packed, goes to `device` here).
models::LoadedModel open_policy(const dsl::PipelineSpec& spec, torch::Device device, torch::ScalarType dtype,
                                bool packed_next = false);

// The packed base of [quantization] over `policy` (null for scheme "none"):
// a compressed-tensors policy keeps its stored codes (quantization.scheme
// and mode must match the checkpoint's: qerl::Error otherwise), any other
// is packed from its weights, one fusion group at a time onto `device`.
// With Residency::codes_only the packed Linears' dense weights are freed:
// only codes stay on the device. Afterwards the whole model is on `device`.
std::unique_ptr<models::PackedBase> open_packed_base(const dsl::PipelineSpec& spec, models::LoadedModel& policy,
                                                     models::Residency residency, torch::Device device);

// codes_only, unless AQN noise (when `aqn_applies` to this copy) writes
// Linear weights, which then must stay dense to be noised and repacked.
models::Residency base_residency(const dsl::AqnSpec& aqn, bool aqn_applies);

// The sampling engine of a rollout (with_aqn: [aqn] noise targets when
// aqn.apply_to covers the rollout) or eval copy of the policy: the model on
// `device`, its packed base (dense weights freed unless AQN writes Linear
// weights), LoRA adapters seeded as the learner's. With a logger it logs
// the quantization summary, unmatched AQN patterns and the resident bytes.
std::unique_ptr<models::SamplingEngine> open_sampling_engine(const dsl::PipelineSpec& spec, torch::Device device,
                                                             bool with_aqn,
                                                             const std::shared_ptr<spdlog::logger>& logger);

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

// [lora] as adapter settings (qerl::Error when quantization.train = "lora"
// and lora.rank < 1), and the seed of the adapters' A matrices: the same in
// learner, rollout and eval, so every copy starts equal.
models::LoraConfig lora_config_of(const dsl::PipelineSpec& spec);
uint64_t lora_seed(const dsl::PipelineSpec& spec);

// One info line on what a quantization plan did (counts, bytes before and
// after) and a warning per ignore pattern that matched no Linear.
void log_quant_summary(const std::shared_ptr<spdlog::logger>& logger, const models::QuantSummary& summary,
                       const models::QuantSpec& spec);

// A counter-based seed for (run seed, step, stream): independent streams
// without stored RNG state, so a resumed run draws what it would have.
uint64_t step_seed(int64_t run_seed, int64_t step, uint64_t stream);

}  // namespace qerl::actors
