// Parity with the reference implementation: the Python `safetensors`
// package (and huggingface_hub's sharding), driven through
// safetensors_peer.py. Both directions compare raw tensor bytes; our writer
// must also produce byte-identical files to save_file, and our sharded
// saves must group and index tensors exactly as huggingface_hub does.
#include "test_tensors.hpp"  // first: see there

#include <cstdlib>
#include <string>

#include "models/io/checkpoint.hpp"
#include "models/io/safetensors.hpp"

using namespace qerl::models;
using namespace qerl::models::test;
namespace fs = std::filesystem;

namespace {

// Runs safetensors_peer.py; on failure the test reports its output.
void run_peer(const fs::path& dir, const std::string& args) {
  const fs::path log = dir / "peer.log";
  const std::string command = std::string("'") + QERL_PYTHON + "' '" + QERL_MODEL_IO_TEST_DIR +
                              "/safetensors_peer.py' " + args + " > '" + log.string() + "' 2>&1";
  const int rc = std::system(command.c_str());
  INFO("command: " << command);
  INFO("output: " << (fs::exists(log) ? read_bytes(log) : std::string("(none)")));
  REQUIRE(rc == 0);
}

std::string quoted(const fs::path& path) { return "'" + path.string() + "'"; }

// {"metadata": {...}, "tensors": {name: {"dtype", "shape", "hex"}}}, from
// tensors in memory: the independent description the other side checks.
nlohmann::json describe(const TensorMap& tensors, const SafetensorsMetadata& metadata) {
  nlohmann::json out = {{"metadata", metadata}, {"tensors", nlohmann::json::object()}};
  for (const auto& [name, tensor] : tensors) {
    out["tensors"][name] = {{"dtype", dtype_name(*from_torch_dtype(tensor.scalar_type()))},
                            {"shape", tensor.sizes().vec()},
                            {"hex", hex_bytes(tensor)}};
  }
  return out;
}

void check_described(const TensorMap& tensors, const SafetensorsMetadata& metadata, const fs::path& expected_file) {
  const nlohmann::json expected = nlohmann::json::parse(read_bytes(expected_file));
  const nlohmann::json actual = describe(tensors, metadata);
  CHECK(actual["metadata"] == expected["metadata"]);
  REQUIRE(actual["tensors"].size() == expected["tensors"].size());
  for (const auto& [name, want] : expected["tensors"].items()) {
    CAPTURE(name);
    REQUIRE(actual["tensors"].contains(name));
    CHECK(actual["tensors"][name] == want);
  }
}

}  // namespace

TEST_CASE("files written by Python safetensors and huggingface_hub load bit-exactly") {
  const auto dir = fresh_dir("peer-read");
  run_peer(dir, "write " + quoted(dir) + " 7");

  const SafetensorsFile all = read_safetensors(dir / "py_all.safetensors");
  check_described(all.tensors, all.metadata, dir / "py_all.expected.json");
  CHECK(all.tensors.size() == all_dtypes().size() + 1);

  // Rewriting what we read reproduces Python's file byte for byte.
  const SafetensorsFile one = read_safetensors(dir / "py_one.safetensors");
  write_safetensors(dir / "ours_one.safetensors", one.tensors, one.metadata);
  CHECK(read_bytes(dir / "ours_one.safetensors") == read_bytes(dir / "py_one.safetensors"));

  // The sharded checkpoint written with save_pretrained's conventions.
  const Checkpoint hf = load_checkpoint(dir / "hf");
  CHECK(hf.config == nlohmann::json{{"model_type", "qwen2"}, {"hidden_size", 6}});
  check_described(hf.tensors, {}, dir / "hf.expected.json");
}

TEST_CASE("files we write load bit-exactly in Python, byte-identical to its save_file") {
  const auto dir = fresh_dir("peer-write");
  const TensorMap tensors = random_tensors(31);
  const SafetensorsMetadata metadata = {{"format", "pt"}, {"origin", "qerl"}, {"ünïcode", "✓"}};
  write_safetensors(dir / "ours_all.safetensors", tensors, metadata);
  write_bytes(dir / "ours_all.expected.json", describe(tensors, metadata).dump());
  run_peer(dir, "check " + quoted(dir / "ours_all.safetensors") + " " + quoted(dir / "ours_all.expected.json"));

  // With one metadata key (Python orders several at random), save_file of
  // what Python loaded from our file gives our bytes exactly.
  write_safetensors(dir / "ours_one.safetensors", tensors, {{"format", "pt"}});
  run_peer(dir, "resave " + quoted(dir / "ours_one.safetensors") + " " + quoted(dir / "py_resaved.safetensors"));
  CHECK(read_bytes(dir / "py_resaved.safetensors") == read_bytes(dir / "ours_one.safetensors"));

  // A sharded save: same groups, names, metadata and index text as huggingface_hub.
  save_checkpoint(dir / "ckpt", {{"model_type", "qwen2"}}, tensors, /*max_shard_bytes=*/100);
  run_peer(dir, "check_hf " + quoted(dir / "ckpt") + " 100");
}
