// Helpers shared by the model IO tests: seeded random tensors whose bytes
// cover every bit pattern (NaNs, -0.0, subnormals), raw-byte comparison,
// fresh temp folders, and catching the message of a qerl::Error. Include it
// first: it settles the CHECK clash between LibTorch and doctest.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "models/io/safetensors.hpp"

// c10's logging defines a CHECK macro that would shadow doctest's: include
// this header before <doctest/doctest.h> in every test file.
#undef CHECK
#include <doctest/doctest.h>

namespace qerl::models::test {

// Every dtype qerl reads and writes.
std::vector<torch::Dtype> all_dtypes();

// Random bytes of `dtype` (bool: 0 or 1), reproducible from `seed`.
torch::Tensor random_tensor(torch::Dtype dtype, const std::vector<int64_t>& shape, uint64_t seed);

// One tensor per dtype, in assorted shapes (scalar and 0-sized included).
TensorMap random_tensors(uint64_t seed);

// Same dtype, same shape and bit-identical bytes.
bool same_bits(const torch::Tensor& a, const torch::Tensor& b);
bool same_bits(const TensorMap& a, const TensorMap& b);

// Lowercase hex of the raw bytes, as safetensors_peer.py writes them.
std::string hex_bytes(const torch::Tensor& tensor);

// A new empty folder under the system temp folder.
std::filesystem::path fresh_dir(const std::string& name);

// The message of the qerl::Error that `body` throws; fails the test if it
// throws nothing or something else.
std::string error_of(const std::function<void()>& body);

std::string read_bytes(const std::filesystem::path& file);
void write_bytes(const std::filesystem::path& file, const std::string& bytes);

}  // namespace qerl::models::test
