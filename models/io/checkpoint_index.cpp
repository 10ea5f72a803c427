// Shard naming, shard planning and the index file. plan_shards follows
// huggingface_hub's split_state_dict_into_shards_factory step for step so
// that our sharded saves name and group tensors as save_pretrained does
// (checked against the Python package in tests/models/io).
#include "models/io/checkpoint_index.hpp"

#include <cctype>
#include <cstdio>

#include "common/error.hpp"

namespace qerl::models {

std::string shard_file_name(size_t index, size_t count) {
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

bool is_shard_file_name(std::string_view name) {
  const std::string_view pattern = "model-#####-of-#####.safetensors";
  if (name.size() != pattern.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const bool ok = pattern[i] == '#' ? std::isdigit(static_cast<unsigned char>(name[i])) != 0 : name[i] == pattern[i];
    if (!ok) return false;
  }
  return true;
}

std::vector<std::vector<std::string>> plan_shards(const std::vector<TensorBytes>& tensors,
                                                  uint64_t max_shard_bytes) {
  std::vector<std::vector<std::string>> shards;
  std::vector<std::string> current;
  uint64_t current_bytes = 0;
  for (const TensorBytes& tensor : tensors) {
    if (tensor.bytes > max_shard_bytes) {
      shards.push_back({tensor.name});
      continue;
    }
    if (current_bytes + tensor.bytes > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(tensor.name);
    current_bytes += tensor.bytes;
  }
  if (!current.empty()) shards.push_back(std::move(current));
  return shards;
}

CheckpointIndex parse_checkpoint_index(std::string_view text, const std::string& file) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error(file + ": not valid JSON: " + e.what());
  }
  if (!json.is_object() || !json.contains("weight_map") || !json["weight_map"].is_object()) {
    throw Error(file + ": needs a \"weight_map\" object {tensor name: shard file}");
  }
  CheckpointIndex index;
  if (json.contains("metadata")) index.metadata = json["metadata"];
  for (const auto& [name, shard] : json["weight_map"].items()) {
    if (!shard.is_string()) throw Error(file + ": tensor '" + name + "': shard is not a string");
    const std::string shard_name = shard.get<std::string>();
    // The index is input: it may only name files next to it.
    if (shard_name.empty() || shard_name == "." || shard_name == ".." ||
        shard_name.find('/') != std::string::npos || shard_name.find('\0') != std::string::npos) {
      throw Error(file + ": tensor '" + name + "': shard '" + shard_name + "' is not a file name in this folder");
    }
    index.weight_map.emplace(name, shard_name);
  }
  return index;
}

std::string dump_checkpoint_index(const CheckpointIndex& index) {
  nlohmann::json json = {{"metadata", index.metadata}, {"weight_map", index.weight_map}};
  return json.dump(/*indent=*/2, /*indent_char=*/' ', /*ensure_ascii=*/true) + "\n";
}

}  // namespace qerl::models
