// A .safetensors file's tensors as stored bytes, without LibTorch (the
// tools tests keep LibTorch out of most of their translation units).
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
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

}  // namespace qerl::test
