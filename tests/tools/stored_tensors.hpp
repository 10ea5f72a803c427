// A .safetensors file's tensors as stored bytes (read, or patched in place), without
// LibTorch (the tools tests keep LibTorch out of most of their translation units).
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "models/io/safetensors_header.hpp"
#include "run_tool.hpp"

namespace qerl::test {

struct StoredTensor {
  models::Dtype dtype = models::Dtype::F32;
  std::vector<int64_t> shape;
  std::string bytes;
};

inline std::map<std::string, StoredTensor> read_tensors(const std::filesystem::path& file) {
  const std::string bytes = slurp(file);
  REQUIRE(!bytes.empty());
  const auto header = models::parse_safetensors_header(bytes, bytes.size(), file.string());
  std::map<std::string, StoredTensor> out;
  for (const auto& t : header.tensors)
    out[t.name] = {t.dtype, t.shape, bytes.substr(t.data_begin, t.data_end - t.data_begin)};
  return out;
}

// The elements of an F32 tensor.
inline std::vector<float> f32_values(const StoredTensor& t) {
  REQUIRE(t.dtype == models::Dtype::F32);
  std::vector<float> out(t.bytes.size() / 4);
  std::memcpy(out.data(), t.bytes.data(), out.size() * 4);
  return out;
}

// The bit patterns of a BF16 tensor.
inline std::vector<uint16_t> bf16_words(const StoredTensor& t) {
  REQUIRE(t.dtype == models::Dtype::BF16);
  std::vector<uint16_t> out(t.bytes.size() / 2);
  std::memcpy(out.data(), t.bytes.data(), out.size() * 2);
  return out;
}

// Overwrites element `index` (row-major) of the F32 tensor `name` in `file`,
// in place: how a test plants a NaN or an infinity in a checkpoint.
inline void overwrite_f32(const std::filesystem::path& file, const std::string& name, int64_t index, float value) {
  const std::string bytes = slurp(file);
  REQUIRE(!bytes.empty());
  const auto header = models::parse_safetensors_header(bytes, bytes.size(), file.string());
  for (const auto& t : header.tensors) {
    if (t.name != name) continue;
    REQUIRE(t.dtype == models::Dtype::F32);
    REQUIRE(index >= 0);
    REQUIRE(t.data_begin + 4 * static_cast<uint64_t>(index) + 4 <= t.data_end);
    std::fstream out(file, std::ios::binary | std::ios::in | std::ios::out);
    out.seekp(static_cast<std::streamoff>(t.data_begin + 4 * static_cast<uint64_t>(index)));
    out.write(reinterpret_cast<const char*>(&value), 4);
    REQUIRE(out.good());
    return;
  }
  FAIL("no tensor " << name << " in " << file);
}

}  // namespace qerl::test
