// Moving weights between a CausalLM and HF checkpoint folders (through
// models/io). qerl's parameter names are the per-expert HF checkpoint names
// that transformers 5.23's save_pretrained writes; checkpoints with fused
// expert tensors (experts.gate_up_proj [E, 2I, H], experts.down_proj
// [E, H, I], as 5.x holds them in memory) are split on load.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <torch/types.h>

#include "models/io/checkpoint.hpp"
#include "models/nn/causal_lm.hpp"

namespace qerl::models {

// Renames/splits checkpoint tensors into qerl's names: fused experts ->
// per-expert, mixtral's "mlp." -> "block_sparse_moe.", drops rotary
// inv_freq buffers and a tied lm_head.weight. Tensors are views (no copy).
TensorMap to_qerl_layout(const TensorMap& tensors, const ModelConfig& config);

// Copies every parameter from `tensors` (cast to the parameter's dtype and
// device). Throws qerl::Error on a missing, unexpected or mis-shaped tensor.
void load_weights(CausalLMImpl& lm, const TensorMap& tensors);

// Parameters by HF name, detached, contiguous, on CPU in the model dtype.
TensorMap export_weights(CausalLMImpl& lm);

// HF-style random init: normal(0, initializer_range) for linear and
// embedding weights (pad row zeroed), zeros for biases, ones for norms.
void init_weights(CausalLMImpl& lm, uint64_t seed);

struct LoadOptions {
  std::optional<torch::ScalarType> dtype;  // default: the config's dtype
  torch::Device device = torch::kCPU;
};

// config.json + safetensors -> model in eval mode.
CausalLM load_causal_lm(const std::filesystem::path& dir, const LoadOptions& options = {});

// Writes config.json (the loaded one, "dtype" set to the model's) and the
// weights in the per-expert layout, loadable by transformers 5.23 and qerl.
void save_causal_lm(const std::filesystem::path& dir, CausalLMImpl& lm);

// Parameter counts; `active` counts only K of the E experts of each MoE layer.
struct ParameterCount {
  int64_t total = 0;
  int64_t active = 0;
};
ParameterCount count_parameters(CausalLMImpl& lm);

// The bytes a model's weights occupy on their device now: every parameter
// with storage plus the codes and scales of Linears that compute with
// 4-bit codes (their freed dense weights count 0), against the same
// weights held densely in bf16. LoRA adapters are not parameters of the
// model and are not counted.
struct ResidentWeights {
  int64_t dense_bytes = 0;  // parameters with storage
  int64_t code_bytes = 0;   // codes + block and global scales
  int64_t bf16_bytes = 0;   // every weight (released ones by their shape) at 2 bytes
  int64_t bytes() const { return dense_bytes + code_bytes; }
  double ratio() const { return bf16_bytes > 0 ? static_cast<double>(bytes()) / static_cast<double>(bf16_bytes) : 0.0; }
  // "1.06 MiB (codes 0.95 MiB + dense 0.11 MiB) = 0.29x the 3.68 MiB of its bf16 weights"
  std::string describe() const;
};
ResidentWeights resident_weights(CausalLMImpl& lm);

}  // namespace qerl::models
