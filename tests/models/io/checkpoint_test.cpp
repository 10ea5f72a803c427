// HF checkpoint folders: single-file and sharded saves round-trip
// bit-exactly with config.json; shards are grouped as huggingface_hub
// groups them; a resave removes the previous save's stale weight files; and
// every inconsistency of a sharded folder is one error naming file and tensor.
#include "test_tensors.hpp"  // first: see there

#include <set>

#include "models/io/checkpoint.hpp"
#include "models/io/checkpoint_index.hpp"

using namespace qerl::models;
using namespace qerl::models::test;
namespace fs = std::filesystem;

namespace {

std::set<std::string> files_in(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename().string());
  return names;
}

const nlohmann::json kConfig = {{"model_type", "qwen2"}, {"hidden_size", 6}, {"rope_theta", 1e6}, {"name", "ünï"}};

}  // namespace

TEST_CASE("shard planning follows huggingface_hub's split") {
  // The docstring example: [6, 6, 2, 6, 2, 2] with a limit of 10.
  const std::vector<TensorBytes> sizes = {{"a", 6}, {"b", 6}, {"c", 2}, {"d", 6}, {"e", 2}, {"f", 2}};
  CHECK(plan_shards(sizes, 10) == std::vector<std::vector<std::string>>{{"a"}, {"b", "c"}, {"d", "e", "f"}});
  // A tensor over the limit gets its own shard, ahead of the one being filled.
  CHECK(plan_shards({{"a", 3}, {"big", 20}, {"c", 3}}, 10) ==
        std::vector<std::vector<std::string>>{{"big"}, {"a", "c"}});
  CHECK(plan_shards({}, 10).empty());
  CHECK(shard_file_name(0, 3) == "model-00001-of-00003.safetensors");
  CHECK(is_shard_file_name("model-00012-of-00345.safetensors"));
  CHECK_FALSE(is_shard_file_name("model-0001-of-00003.safetensors"));
  CHECK_FALSE(is_shard_file_name("model.safetensors"));
}

TEST_CASE("a single-file checkpoint round-trips config and tensors bit-exactly") {
  const auto dir = fresh_dir("ckpt-single");
  const TensorMap tensors = random_tensors(21);
  save_checkpoint(dir, kConfig, tensors);
  CHECK(files_in(dir) == std::set<std::string>{"config.json", "model.safetensors"});
  const Checkpoint loaded = load_checkpoint(dir);
  CHECK(loaded.config == kConfig);
  CHECK(same_bits(loaded.tensors, tensors));
  CHECK(read_safetensors(dir / "model.safetensors").metadata == SafetensorsMetadata{{"format", "pt"}});
}

TEST_CASE("a sharded checkpoint round-trips, with an index as save_pretrained writes it") {
  const auto dir = fresh_dir("ckpt-sharded");
  const TensorMap tensors = random_tensors(22);
  save_checkpoint(dir, kConfig, tensors, /*max_shard_bytes=*/100);
  const auto names = files_in(dir);
  CHECK(names.count("model.safetensors.index.json") == 1);
  CHECK(names.count("model.safetensors") == 0);
  const size_t shard_count = names.size() - 2;
  REQUIRE(shard_count > 2);
  for (size_t i = 0; i < shard_count; ++i) CHECK(names.count(shard_file_name(i, shard_count)) == 1);

  const auto index = parse_checkpoint_index(read_bytes(dir / kIndexFile), kIndexFile);
  uint64_t total = 0;
  for (const auto& [name, tensor] : tensors) total += tensor.nbytes();
  CHECK(index.metadata == nlohmann::json{{"total_size", total}});
  CHECK(index.weight_map.size() == tensors.size());
  for (const auto& [name, shard] : index.weight_map) {
    CHECK(read_safetensors(dir / shard).tensors.count(name) == 1);
  }
  const Checkpoint loaded = load_checkpoint(dir);
  CHECK(loaded.config == kConfig);
  CHECK(same_bits(loaded.tensors, tensors));
}

TEST_CASE("resaving removes the weight files of the previous save") {
  const auto dir = fresh_dir("ckpt-resave");
  write_bytes(dir / "tokenizer.json", "{}");  // not ours: must survive
  save_checkpoint(dir, kConfig, random_tensors(23), 100);
  const TensorMap fewer = random_tensors(24);
  save_checkpoint(dir, kConfig, fewer, 400);  // fewer, larger shards
  const auto index = parse_checkpoint_index(read_bytes(dir / kIndexFile), kIndexFile);
  std::set<std::string> expected = {"config.json", "tokenizer.json", kIndexFile};
  for (const auto& [name, shard] : index.weight_map) expected.insert(shard);
  CHECK(files_in(dir) == expected);
  CHECK(same_bits(load_checkpoint(dir).tensors, fewer));

  const TensorMap single = random_tensors(25);
  save_checkpoint(dir, kConfig, single);
  CHECK(files_in(dir) == std::set<std::string>{"config.json", "tokenizer.json", "model.safetensors"});
  CHECK(same_bits(load_checkpoint(dir).tensors, single));
}

TEST_CASE("broken checkpoint folders give errors naming the file and the tensor") {
  const auto dir = fresh_dir("ckpt-broken");
  CHECK(error_of([&] { load_checkpoint(dir); }) == (dir / "config.json").string() + ": missing or unreadable");
  write_bytes(dir / "config.json", "{\"a\": ");
  CHECK(error_of([&] { load_checkpoint(dir); }).find((dir / "config.json").string() + ": not valid JSON") == 0);
  write_bytes(dir / "config.json", "{}");
  CHECK(error_of([&] { load_checkpoint(dir); }) ==
        dir.string() + ": no model.safetensors or model.safetensors.index.json");

  // Two shards: A holds a, b; B holds c.
  const TensorMap tensors = {{"a", random_tensor(torch::kFloat, {8}, 1)},
                             {"b", random_tensor(torch::kFloat, {8}, 2)},
                             {"c", random_tensor(torch::kFloat, {8}, 3)}};
  save_checkpoint(dir, kConfig, tensors, /*max_shard_bytes=*/64);
  const std::string shard_a = shard_file_name(0, 2), shard_b = shard_file_name(1, 2);
  const std::string index_text = read_bytes(dir / kIndexFile);
  auto write_index = [&](const std::map<std::string, std::string>& weight_map) {
    CheckpointIndex index;
    index.weight_map = weight_map;
    write_bytes(dir / kIndexFile, dump_checkpoint_index(index));
  };
  const std::string index_path = (dir / kIndexFile).string();

  write_index({{"a", shard_a}, {"b", shard_a}, {"c", "model-00009-of-00009.safetensors"}});
  CHECK(error_of([&] { load_checkpoint(dir); }) ==
        index_path + ": shard 'model-00009-of-00009.safetensors' (holding tensor 'c') is missing");

  write_index({{"a", shard_a}, {"b", shard_a}, {"c", shard_b}, {"d", shard_b}});
  CHECK(error_of([&] { load_checkpoint(dir); }) ==
        (dir / shard_b).string() + ": tensor 'd' named in model.safetensors.index.json is missing");

  write_index({{"a", shard_a}, {"c", shard_b}});
  CHECK(error_of([&] { load_checkpoint(dir); }) ==
        (dir / shard_a).string() + ": tensor 'b' is not in model.safetensors.index.json");
  write_index({{"a", shard_a}, {"b", shard_b}, {"c", shard_b}});
  CHECK(error_of([&] { load_checkpoint(dir); }) ==
        (dir / shard_a).string() + ": tensor 'b' is listed in model.safetensors.index.json under shard '" + shard_b + "'");

  write_index({{"a", shard_a}, {"b", "../outside.safetensors"}});
  CHECK(error_of([&] { load_checkpoint(dir); }) ==
        index_path + ": tensor 'b': shard '../outside.safetensors' is not a file name in this folder");

  // The same tensor in two shards.
  write_bytes(dir / kIndexFile, index_text);
  write_safetensors(dir / shard_b, {{"c", tensors.at("c")}, {"a", tensors.at("a")}});
  CHECK(error_of([&] { load_checkpoint(dir); }) ==
        (dir / shard_b).string() + ": tensor 'a' is also in shard '" + shard_a + "'");

  // A corrupt shard: its header error names the shard.
  write_bytes(dir / shard_b, std::string("\x10\0\0\0\0\0\0\0", 8) + "{\"c\": 1}        ");
  CHECK(error_of([&] { load_checkpoint(dir); }) == (dir / shard_b).string() + ": tensor 'c': header entry is not an object");
}
