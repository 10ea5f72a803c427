// HF sharded-checkpoint conventions, without LibTorch: shard file names
// (model-00001-of-00003.safetensors), the split of tensors into shards (as
// huggingface_hub.split_torch_state_dict_into_shards, which save_pretrained
// uses) and model.safetensors.index.json
// ({"metadata": {"total_size": N}, "weight_map": {tensor: shard file}}).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace qerl::models {

inline constexpr const char* kConfigFile = "config.json";
inline constexpr const char* kWeightsFile = "model.safetensors";
inline constexpr const char* kIndexFile = "model.safetensors.index.json";

// shard_file_name(0, 3) == "model-00001-of-00003.safetensors".
std::string shard_file_name(size_t index, size_t count);
// True for names shard_file_name produces (what save_pretrained cleans up).
bool is_shard_file_name(std::string_view name);

struct TensorBytes {
  std::string name;
  uint64_t bytes = 0;
};

// Groups tensors, in the given order, into shards of at most
// `max_shard_bytes`: a new shard starts when the next tensor would tip the
// current one over; a tensor larger than the limit gets a shard of its own,
// placed before the one being filled. Returns tensor names per shard.
std::vector<std::vector<std::string>> plan_shards(const std::vector<TensorBytes>& tensors,
                                                  uint64_t max_shard_bytes);

struct CheckpointIndex {
  nlohmann::json metadata = nlohmann::json::object();  // {"total_size": N, ...}
  std::map<std::string, std::string> weight_map;         // tensor name -> shard file name
};

// Throws qerl::Error naming `file` on bad JSON, a missing weight_map, or a
// shard that is not a plain file name inside the checkpoint folder.
CheckpointIndex parse_checkpoint_index(std::string_view text, const std::string& file);

// As transformers writes it: json.dumps(index, indent=2, sort_keys=True) + "\n".
std::string dump_checkpoint_index(const CheckpointIndex& index);

}  // namespace qerl::models
