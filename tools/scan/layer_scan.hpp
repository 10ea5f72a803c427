// The model side of qerl-scan: which Linear weights of a CausalLM get
// scanned (ignore patterns with NamePatterns semantics), fake-quantizing one
// weight with its error statistics, and the error of the final logits on
// calibration prompts when only that weight is replaced. The scan itself
// (loop, table, JSON) is tools/qerl_scan.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "models/nn/causal_lm.hpp"
#include "tools/scan/quant_error.hpp"

namespace qerl::tools {

enum class QuantScheme { nvfp4, mxfp4 };

const char* scheme_name(QuantScheme scheme);
// "nvfp4" / "mxfp4" (case-insensitive); throws qerl::Error naming the known ones.
QuantScheme parse_scheme(const std::string& name);
// 16 (NVFP4) or 32 (MXFP4): the input dim must be a multiple of it.
int64_t scheme_group_size(QuantScheme scheme);

// Always-ignored Linear modules, as compressed-tensors' typical MoE recipes
// ignore them: lm_head and the routers (mlp.gate, shared_expert_gate).
std::vector<std::string> default_scan_ignores();

struct ScanTarget {
  std::string module_name;  // e.g. "model.layers.0.self_attn.q_proj" (weight = name + ".weight")
  torch::Tensor weight;     // the live parameter: [out, in] model dtype, shares its storage
};

struct ScanSelection {
  std::vector<ScanTarget> targets;        // every Linear not ignored, in module order
  std::vector<std::string> ignored;       // Linear modules an ignore pattern matched
  std::vector<std::string> unmatched;     // extra patterns that matched no Linear module
};

// Linear modules of `lm` minus default_scan_ignores() and `extra_ignores`.
// Embeddings and norms are not Linear and never appear. Throws qerl::Error
// on an invalid regex.
ScanSelection select_scan_targets(models::CausalLMImpl& lm, const std::vector<std::string>& extra_ignores);

// Why `weight` cannot be quantized with `scheme` (dtype, rank, input dim not
// a multiple of the group size), or nullopt when it can.
std::optional<std::string> unsupported_reason(const torch::Tensor& weight, QuantScheme scheme);

struct FakeQuantized {
  torch::Tensor weight;  // [out, in] in the input's dtype and device: dequantize(quantize(w))
  QuantErrorStats stats;
};

// NVFP4 with the tensor's own global scale, or MXFP4 with the
// compressed-tensors scale rule, through kernels/quantize_tensor.hpp.
// Throws qerl::Error when unsupported_reason(weight, scheme) is set.
FakeQuantized fake_quantize_with_stats(const torch::Tensor& weight, QuantScheme scheme);

// [count, length] int64 token ids uniform in [0, vocab_size), from `seed`
// (std::mt19937_64, so the same seed gives the same prompts everywhere).
torch::Tensor calibration_prompts(int64_t vocab_size, int64_t count, int64_t length, uint64_t seed);

struct OutputError {
  double relative_l2 = 0;  // ||logits - clean|| / ||clean|| over all [N, S, V]
  double mean_kl = 0;      // KL(clean || this) of the next-token distributions, mean over N * S positions
};

// The clean logits of `lm` on fixed prompts, and the error of the logits
// when one parameter is temporarily replaced.
class CalibrationRun {
 public:
  // prompts: [N, S] int64. Runs the clean forward (with routing capture);
  // throws qerl::Error when its logits hold NaN or infinities.
  CalibrationRun(models::CausalLMImpl& lm, torch::Tensor prompts);

  // Copies `replacement` into `parameter` under NoGradGuard, runs the
  // forward, and copies the original back (also when the forward throws).
  OutputError with_replaced(torch::Tensor& parameter, const torch::Tensor& replacement);

  // For an expert's Linear ("model.layers.L.<mlp>.experts.E.<proj>"): how
  // many calibration tokens the clean pass routed to that expert; nullopt
  // for any other module.
  std::optional<int64_t> routed_tokens(const std::string& module_name) const;

 private:
  torch::Tensor logits();  // [N, S, V] float32

  models::CausalLMImpl& lm_;
  torch::Tensor prompts_;       // [N, S] int64 on the model's device
  torch::Tensor clean_logits_;  // [N, S, V] float32
  torch::Tensor clean_log_probs_;  // [N, S, V] float32
  torch::Tensor routing_;       // [N, S, L_moe, K] int16 on the CPU; undefined for dense models
};

}  // namespace qerl::tools
