// load_checkpoint / save_checkpoint over safetensors.hpp and the HF index
// conventions of checkpoint_index.hpp. Like transformers, a folder holding
// both model.safetensors and an index loads model.safetensors. Saving writes
// every file atomically, then removes weight files of an earlier save that
// the new one does not use; at each step the folder loads consistently,
// except when an equally sharded save is interrupted midway (same names).
#include "models/io/checkpoint.hpp"

#include <fstream>
#include <iterator>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/atomic_file.hpp"
#include "models/io/checkpoint_index.hpp"
#include "models/io/safetensors.hpp"

namespace qerl::models {
namespace {

namespace fs = std::filesystem;

bool is_file(const fs::path& file) {
  std::error_code error;
  return fs::is_regular_file(file, error);
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file.string() + ": missing or unreadable");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

nlohmann::json read_config(const fs::path& file) {
  const std::string text = read_text(file);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(file.string() + ": not valid JSON: " + e.what());
  }
}

TensorMap load_sharded(const fs::path& dir) {
  const fs::path index_file = dir / kIndexFile;
  const CheckpointIndex index = parse_checkpoint_index(read_text(index_file), index_file.string());
  std::map<std::string, std::string> shards;  // shard file -> a tensor the index puts there
  for (const auto& [name, shard] : index.weight_map) shards.emplace(shard, name);

  std::map<std::string, std::string> found_in;  // tensor -> shard holding it
  TensorMap tensors;
  for (const auto& [shard, some_tensor] : shards) {
    const fs::path shard_file = dir / shard;
    if (!is_file(shard_file)) {
      throw Error(index_file.string() + ": shard '" + shard + "' (holding tensor '" + some_tensor + "') is missing");
    }
    for (auto& [name, tensor] : read_safetensors(shard_file).tensors) {
      const auto [previous, first] = found_in.emplace(name, shard);
      if (!first) {
        throw Error(shard_file.string() + ": tensor '" + name + "' is also in shard '" + previous->second + "'");
      }
      tensors.emplace(name, std::move(tensor));
    }
  }
  for (const auto& [name, shard] : found_in) {
    const auto mapped = index.weight_map.find(name);
    if (mapped == index.weight_map.end()) {
      throw Error((dir / shard).string() + ": tensor '" + name + "' is not in " + kIndexFile);
    }
    if (mapped->second != shard) {
      throw Error((dir / shard).string() + ": tensor '" + name + "' is listed in " + kIndexFile + " under shard '" +
                  mapped->second + "'");
    }
  }
  for (const auto& [name, shard] : index.weight_map) {
    if (!found_in.count(name)) {
      throw Error((dir / shard).string() + ": tensor '" + name + "' named in " + kIndexFile + " is missing");
    }
  }
  return tensors;
}

// Weight files of an earlier save that this one did not write.
void remove_stale_weights(const fs::path& dir, const std::set<std::string>& written) {
  try {
    for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      const bool weights = name == kWeightsFile || name == kIndexFile || is_shard_file_name(name);
      if (weights && !written.count(name) && entry.is_regular_file()) fs::remove(entry.path());
    }
  } catch (const fs::filesystem_error& e) {
    throw Error(dir.string() + ": cannot remove weights of an earlier save: " + e.code().message());
  }
}

}  // namespace

Checkpoint load_checkpoint(const fs::path& dir) {
  Checkpoint checkpoint;
  checkpoint.config = read_config(dir / kConfigFile);
  if (is_file(dir / kWeightsFile)) {
    checkpoint.tensors = read_safetensors(dir / kWeightsFile).tensors;
  } else if (is_file(dir / kIndexFile)) {
    checkpoint.tensors = load_sharded(dir);
  } else {
    throw Error(dir.string() + ": no " + kWeightsFile + " or " + kIndexFile);
  }
  return checkpoint;
}

void save_checkpoint(const fs::path& dir, const nlohmann::json& config, const TensorMap& tensors,
                     uint64_t max_shard_bytes) {
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) throw Error(dir.string() + ": cannot create folder: " + error.message());
  std::string config_text;
  try {
    config_text = config.dump(/*indent=*/2, /*indent_char=*/' ', /*ensure_ascii=*/true) + "\n";
  } catch (const nlohmann::json::exception& e) {
    throw Error((dir / kConfigFile).string() + ": config cannot be written: " + e.what());
  }
  write_file_atomically(dir / kConfigFile, config_text);

  std::vector<TensorBytes> sizes;
  uint64_t total_size = 0;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) throw Error(dir.string() + ": tensor '" + name + "' is undefined");
    const auto bytes = static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
    sizes.push_back({name, bytes});
    total_size += bytes;
  }
  const SafetensorsMetadata metadata = {{"format", "pt"}};  // what save_pretrained records
  const std::vector<std::vector<std::string>> shards = plan_shards(sizes, max_shard_bytes);
  std::set<std::string> written;
  if (shards.size() <= 1) {
    write_safetensors(dir / kWeightsFile, tensors, metadata);
    written.insert(kWeightsFile);
  } else {
    CheckpointIndex index;
    index.metadata = {{"total_size", total_size}};
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string file = shard_file_name(i, shards.size());
      TensorMap shard;
      for (const std::string& name : shards[i]) {
        shard.emplace(name, tensors.at(name));
        index.weight_map.emplace(name, file);
      }
      write_safetensors(dir / file, shard, metadata);
      written.insert(file);
    }
    write_file_atomically(dir / kIndexFile, dump_checkpoint_index(index));
    written.insert(kIndexFile);
  }
  remove_stale_weights(dir, written);
}

}  // namespace qerl::models
