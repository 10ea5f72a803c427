// Test helpers for models/io: random tensors from std::mt19937_64 (not
// torch's generator, so the reference does not share code with the path
// under test), byte comparison and temp folders.
#include "test_tensors.hpp"

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include "common/error.hpp"

namespace qerl::models::test {

std::vector<torch::Dtype> all_dtypes() {
  return {torch::kFloat,   torch::kHalf,  torch::kBFloat16, torch::kDouble, torch::kFloat8_e4m3fn,
          torch::kFloat8_e5m2, torch::kUInt8, torch::kInt8, torch::kInt16, torch::kInt32,
          torch::kInt64,   torch::kBool,  torch::kUInt16,   torch::kUInt32, torch::kUInt64};
}

torch::Tensor random_tensor(torch::Dtype dtype, const std::vector<int64_t>& shape, uint64_t seed) {
  torch::Tensor tensor = torch::empty(shape, torch::TensorOptions().dtype(dtype));
  std::mt19937_64 random(seed);
  auto* bytes = static_cast<unsigned char*>(tensor.data_ptr());
  for (size_t i = 0; i < tensor.nbytes(); ++i) {
    bytes[i] = static_cast<unsigned char>(dtype == torch::kBool ? random() & 1 : random() & 0xff);
  }
  return tensor;
}

TensorMap random_tensors(uint64_t seed) {
  const std::vector<std::vector<int64_t>> shapes = {{3, 5}, {7}, {2, 3, 4}, {}, {0, 3}, {1, 1, 9}};
  TensorMap tensors;
  const auto dtypes = all_dtypes();
  for (size_t i = 0; i < dtypes.size(); ++i) {
    const std::string name = "model.layers." + std::to_string(i) + "." + c10::toString(dtypes[i]) + ".weight";
    tensors.emplace(name, random_tensor(dtypes[i], shapes[i % shapes.size()], seed * 100 + i));
  }
  return tensors;
}

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const torch::Tensor ca = a.contiguous(), cb = b.contiguous();
  return ca.nbytes() == cb.nbytes() && std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

bool same_bits(const TensorMap& a, const TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, tensor] : a) {
    const auto other = b.find(name);
    if (other == b.end() || !same_bits(tensor, other->second)) return false;
  }
  return true;
}

std::string hex_bytes(const torch::Tensor& tensor) {
  const torch::Tensor c = tensor.contiguous();
  const auto* bytes = static_cast<const unsigned char*>(c.data_ptr());
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (size_t i = 0; i < c.nbytes(); ++i) {
    hex += digits[bytes[i] >> 4];
    hex += digits[bytes[i] & 0xf];
  }
  return hex;
}

std::filesystem::path fresh_dir(const std::string& name) {
  // One root per test process, removed when the process exits.
  struct Root {
    std::filesystem::path path = std::filesystem::temp_directory_path() /
                                 ("qerl-io-test-" + std::to_string(::getpid()));
    ~Root() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const Root root;
  const auto dir = root.path / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const qerl::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected qerl::Error, got: " << e.what());
  }
  FAIL("expected qerl::Error, nothing was thrown");
  return "";
}

std::string read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  REQUIRE(in);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::filesystem::path& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary) << bytes;
}

}  // namespace qerl::models::test
