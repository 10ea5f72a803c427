// Moving weights between a CausalLM and HF checkpoint folders (through
// models/io). qerl's parameter names are the per-expert HF checkpoint names
// that transformers 5.23's save_pretrained writes; checkpoints with fused
// expert tensors (experts.gate_up_proj [E, 2I, H], experts.down_proj
// [E, H, I], as 5.x holds them in memory) are split on load.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>

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

}  // namespace qerl::models
