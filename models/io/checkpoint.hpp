// HF checkpoint folders: config.json + model.safetensors, or shards
// model-0000k-of-0000n.safetensors with model.safetensors.index.json.
// Loading memory-maps the files (tensors alias the mapping, which stays
// alive as long as any of them does); saving writes the same layout
// atomically (temp files, then rename) and keeps config.json as given.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/types.h>

namespace qerl::models {

// Tensors by HF parameter name, e.g. "model.layers.0.self_attn.q_proj.weight".
using TensorMap = std::map<std::string, torch::Tensor>;

struct Checkpoint {
  nlohmann::json config;  // config.json as read
  TensorMap tensors;      // CPU tensors in their stored dtype
};

// Throws qerl::Error naming the file (and tensor) on any problem: missing
// config.json or weights, bad JSON, corrupt safetensors header, index that
// names a missing shard or tensor.
Checkpoint load_checkpoint(const std::filesystem::path& dir);

// Writes config.json and the tensors; more than `max_shard_bytes` of tensor
// data is split into shards with an index. Bit-exact round trip with
// load_checkpoint. Existing files of the same names are replaced atomically.
void save_checkpoint(const std::filesystem::path& dir, const nlohmann::json& config,
                     const TensorMap& tensors, uint64_t max_shard_bytes = 5'000'000'000);  // "5GB" as transformers means it

}  // namespace qerl::models
