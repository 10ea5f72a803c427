// read_safetensors / write_safetensors with LibTorch: bit-exact round trips
// for every dtype on random bytes, zero-copy views that keep the mapping
// alive and never write through to the file, unaligned data copied out,
// atomic replacement, and errors that name the file and tensor.
#include "test_tensors.hpp"  // first: see there

#include <cstring>

#include "models/io/safetensors.hpp"

using namespace qerl::models;
using namespace qerl::models::test;

TEST_CASE("every dtype round-trips bit-exactly, with metadata") {
  const auto dir = fresh_dir("roundtrip");
  for (uint64_t seed : {1, 2, 3}) {
    const TensorMap tensors = random_tensors(seed);
    const SafetensorsMetadata metadata = {{"format", "pt"}, {"seed", std::to_string(seed)}, {"empty", ""}};
    write_safetensors(dir / "m.safetensors", tensors, metadata);
    const SafetensorsFile loaded = read_safetensors(dir / "m.safetensors");
    CHECK(same_bits(loaded.tensors, tensors));
    CHECK(loaded.metadata == metadata);
  }
  // The file is the only thing left in the folder: no temp files.
  CHECK(std::distance(std::filesystem::directory_iterator(dir), {}) == 1);
}

TEST_CASE("non-contiguous and offset views are written as their values") {
  const auto dir = fresh_dir("views");
  const torch::Tensor base = random_tensor(torch::kFloat, {4, 6}, 11);
  const TensorMap tensors = {{"t", base.t()}, {"slice", base.narrow(1, 2, 3)}, {"row", base[3]}};
  write_safetensors(dir / "v.safetensors", tensors);
  const SafetensorsFile loaded = read_safetensors(dir / "v.safetensors");
  CHECK(same_bits(loaded.tensors.at("t"), base.t().contiguous()));
  CHECK(same_bits(loaded.tensors.at("slice"), base.narrow(1, 2, 3).contiguous()));
  CHECK(same_bits(loaded.tensors.at("row"), base[3].clone()));
}

TEST_CASE("loaded tensors alias one mapping, outlive the file object, and copy on write") {
  const auto dir = fresh_dir("alias");
  const TensorMap tensors = {{"a", random_tensor(torch::kFloat, {16}, 1)}, {"b", random_tensor(torch::kFloat, {8}, 2)}};
  write_safetensors(dir / "a.safetensors", tensors);
  const std::string bytes_before = read_bytes(dir / "a.safetensors");

  torch::Tensor a, b;
  {
    SafetensorsFile loaded = read_safetensors(dir / "a.safetensors");
    a = loaded.tensors.at("a");
    b = loaded.tensors.at("b");
  }
  // Zero copy: both views sit at their file offsets in one mapping (a, then b).
  CHECK(static_cast<char*>(b.data_ptr()) - static_cast<char*>(a.data_ptr()) == 16 * 4);
  CHECK(same_bits(a, tensors.at("a")));  // the mapping outlived the SafetensorsFile
  a.mul_(2);                             // in place, through the private mapping
  CHECK(read_bytes(dir / "a.safetensors") == bytes_before);
  CHECK(same_bits(read_safetensors(dir / "a.safetensors").tensors.at("a"), tensors.at("a")));
}

TEST_CASE("data at an offset that is not a multiple of its itemsize is copied into an aligned tensor") {
  // U8[3] then F32[2] at data offset 3: legal, though Python never writes it.
  const std::string json =
      R"({"u":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"f":{"dtype":"F32","shape":[2],"data_offsets":[3,11]}})";
  std::string file(8, '\0');
  file[0] = static_cast<char>(json.size());
  file += json;
  const float values[2] = {1.5f, -2.25f};
  file += std::string("\x01\x02\x03", 3) + std::string(reinterpret_cast<const char*>(values), sizeof(values));
  REQUIRE((8 + json.size() + 3) % 4 != 0);
  const auto dir = fresh_dir("unaligned");
  write_bytes(dir / "u.safetensors", file);
  const SafetensorsFile loaded = read_safetensors(dir / "u.safetensors");
  const torch::Tensor f = loaded.tensors.at("f");
  CHECK(reinterpret_cast<uintptr_t>(f.data_ptr()) % 4 == 0);
  CHECK(f[0].item<float>() == 1.5f);
  CHECK(f[1].item<float>() == -2.25f);
  CHECK(loaded.tensors.at("u")[2].item<uint8_t>() == 3);
}

TEST_CASE("rewriting a file replaces it atomically: readers of the old file keep the old values") {
  const auto dir = fresh_dir("atomic");
  const torch::Tensor old_values = random_tensor(torch::kBFloat16, {64}, 5);
  write_safetensors(dir / "w.safetensors", {{"w", old_values}});
  const torch::Tensor held = read_safetensors(dir / "w.safetensors").tensors.at("w");
  const torch::Tensor new_values = random_tensor(torch::kBFloat16, {64}, 6);
  write_safetensors(dir / "w.safetensors", {{"w", new_values}});
  CHECK(same_bits(held, old_values));  // the old inode is still mapped
  CHECK(same_bits(read_safetensors(dir / "w.safetensors").tensors.at("w"), new_values));
}

TEST_CASE("write and read errors name the file and the tensor") {
  const auto dir = fresh_dir("errors");
  const auto file = (dir / "x.safetensors").string();
  CHECK(error_of([&] { write_safetensors(file, {{"z", torch::zeros({2}, torch::kComplexFloat)}}); }) ==
        file + ": tensor 'z': dtype ComplexFloat has no safetensors name");
  CHECK(error_of([&] { write_safetensors(file, {{"u", torch::Tensor()}}); }) == file + ": tensor 'u': undefined tensor");
  CHECK_FALSE(std::filesystem::exists(file));
  CHECK(std::filesystem::is_empty(dir));  // no temp file left behind
  CHECK(error_of([&] { read_safetensors(dir / "missing.safetensors"); }).find("missing.safetensors: cannot open") !=
        std::string::npos);
  write_bytes(file, "short");
  CHECK(error_of([&] { read_safetensors(file); }) == file + ": file is 5 bytes, too short for a safetensors header");
}
