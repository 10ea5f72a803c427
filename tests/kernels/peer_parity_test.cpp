// Bit-exact parity with compressed-tensors (the truth for the checkpoint
// formats): compressed_tensors_peer.py writes seeded inputs and what
// compressed-tensors makes of them; we run our kernels on the same inputs and
// require identical packed bytes, scale bytes and global scale, and identical
// bits of the dequantized and fake-quantized weights, for fp32 and bf16.
#include "torch_doctest.hpp"  // first: see there

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "kernels/quantize_tensor.hpp"
#include "models/io/safetensors.hpp"

using namespace qerl::kernels;
using qerl::kernels::test::same_bits;
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs the peer into a fresh folder; on failure the test shows its output.
qerl::models::TensorMap run_peer(uint64_t seed) {
  const fs::path dir = fs::temp_directory_path() / ("qerl-kernels-peer-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path out = dir / "compressed_tensors.safetensors", log = dir / "peer.log";
  const std::string command = std::string("'") + QERL_PYTHON + "' '" + QERL_KERNELS_TEST_DIR +
                              "/compressed_tensors_peer.py' '" + out.string() + "' " + std::to_string(seed) +
                              " > '" + log.string() + "' 2>&1";
  const int rc = std::system(command.c_str());
  INFO("command: " << command);
  INFO("output: " << read_text(log));
  REQUIRE(rc == 0);
  qerl::models::TensorMap tensors = qerl::models::read_safetensors(out).tensors;
  for (auto& [name, t] : tensors) t = t.clone();  // own the bytes before the folder goes
  fs::remove_all(dir);
  return tensors;
}

// Where bits differ: count and the first index with both values.
std::string first_difference(const torch::Tensor& ours, const torch::Tensor& theirs) {
  if (ours.sizes() != theirs.sizes() || ours.scalar_type() != theirs.scalar_type()) {
    std::ostringstream out;
    out << "ours " << ours.scalar_type() << ours.sizes() << " vs theirs " << theirs.scalar_type() << theirs.sizes();
    return out.str();
  }
  const auto as_bits = [](const torch::Tensor& t) {
    return t.element_size() == 1   ? t.contiguous().view(torch::kUInt8).to(torch::kInt64)
           : t.element_size() == 2 ? t.contiguous().view(torch::kInt16).to(torch::kInt64)
                                   : t.contiguous().view(torch::kInt32).to(torch::kInt64);
  };
  const torch::Tensor differ = (as_bits(ours) != as_bits(theirs)).reshape(-1);
  const int64_t count = differ.sum().item<int64_t>();
  if (count == 0) return "identical";
  const int64_t at = differ.nonzero()[0][0].item<int64_t>();
  std::ostringstream out;
  out.precision(9);
  out << count << " of " << differ.numel() << " differ; first at flat index " << at << ": ours "
      << ours.reshape(-1)[at].to(torch::kFloat64).item<double>() << ", theirs "
      << theirs.reshape(-1)[at].to(torch::kFloat64).item<double>();
  return out.str();
}

void require_same(const std::string& what, const torch::Tensor& ours, const torch::Tensor& theirs) {
  INFO(what << ": " << first_difference(ours, theirs));
  CHECK(same_bits(ours, theirs));
}

}  // namespace

TEST_CASE("nvfp4 and mxfp4 match compressed-tensors bit for bit, fp32 and bf16") {
  const qerl::models::TensorMap peer = run_peer(/*seed=*/20260501);
  int nvfp4_cases = 0, mxfp4_cases = 0;
  for (const auto& [name, input] : peer) {
    const std::string suffix = ".input";
    if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    const std::string key = name.substr(0, name.size() - suffix.size());
    const auto field = [&](const std::string& f) {
      const auto it = peer.find(key + "." + f);
      REQUIRE_MESSAGE(it != peer.end(), key << "." << f << " missing from the peer file");
      return it->second;
    };
    CAPTURE(key);
    if (key.rfind("nvfp4.", 0) == 0) {
      ++nvfp4_cases;
      std::optional<float> given;
      if (peer.count(key + ".given_global_scale")) given = field("given_global_scale").item<float>();
      const Nvfp4Weight ours = nvfp4_quantize(input, given);
      require_same(key + ".packed", ours.packed, field("packed"));
      require_same(key + ".scale", ours.block_scale, field("scale"));
      require_same(key + ".global_scale", ours.global_scale, field("global_scale"));
      require_same(key + ".dequant",
                   nvfp4_dequantize(field("packed"), field("scale"), field("global_scale"), input.scalar_type()),
                   field("dequant"));
      require_same(key + ".fake", nvfp4_fake_quantize(input, given), field("fake"));
    } else {
      ++mxfp4_cases;
      const Mxfp4Weight ours = mxfp4_quantize(input, MxScaleRule::compressed_tensors);
      require_same(key + ".packed", ours.packed, field("packed"));
      require_same(key + ".scale", ours.scale, field("scale"));
      require_same(key + ".dequant", mxfp4_dequantize(field("packed"), field("scale"), input.scalar_type()),
                   field("dequant"));
      require_same(key + ".fake", mxfp4_fake_quantize(input), field("fake"));
    }
  }
  // 14 NVFP4 and 12 MXFP4 cases, each in fp32 and bf16.
  CHECK(nvfp4_cases == 28);
  CHECK(mxfp4_cases == 24);
}
