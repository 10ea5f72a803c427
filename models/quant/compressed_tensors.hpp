// Reading compressed-tensors checkpoints (what qerl-quantize, llm-compressor
// and vLLM use for NVFP4 / MXFP4): config.json's quantization_config as a
// QuantSpec, and model folders whose quantized Linears are stored as
// weight_packed / weight_scale / weight_global_scale (+ input_global_scale)
// loaded as a model whose dense weights are the dequantized codes, with the
// codes kept for PackedBase (a frozen quantized base).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "models/io/checkpoint.hpp"
#include "models/nn/causal_lm.hpp"
#include "models/nn/weights.hpp"
#include "models/quant/quant_spec.hpp"

namespace qerl::models {

struct CompressedTensorsConfig {
  std::string format;  // "nvfp4-pack-quantized" | "mxfp4-pack-quantized"
  QuantSpec spec;      // scheme, W4A4 (input_activations set), ignore = the config's ignore list
};

// nullopt when `config` (a config.json) has no quantization_config. A
// quantization_config qerl cannot load (another quant_method or format, a
// status other than "compressed", weights or activations other than the
// NVFP4 / MXFP4 presets, sparsity, a KV-cache scheme, targets other than
// Linear) is a qerl::Error naming `where`, the key and what was expected.
std::optional<CompressedTensorsConfig> read_compressed_tensors_config(const nlohmann::json& config,
                                                                       const std::string& where);

struct LoadedModel {
  CausalLM lm{nullptr};
  std::optional<CompressedTensorsConfig> quantization;  // set for a compressed-tensors folder
  TensorMap packed;  // its packed tensors, qerl names (PackedBase's stored-codes constructor takes them)
};

// An HF folder as load_causal_lm loads it; a compressed-tensors folder with
// every packed Linear's weight set to its dequantization in the model dtype
// (bit-exact with compressed-tensors' decompression) and the codes in
// `packed`. qerl::Error naming the folder on any inconsistency (a packed
// module the model lacks, a missing scale, shapes that disagree).
LoadedModel load_model_folder(const std::filesystem::path& dir, const LoadOptions& options = {});

}  // namespace qerl::models
