// qerl-quantize end to end, with compressed-tensors as the judge: the tool
// writes tiny-moe as nvfp4a16 / mxfp4 / nvfp4 (W4A4) checkpoints, the peer
// compressed_tensors_load.py decompresses them with compressed-tensors'
// own checkpoint dequantizer, and every decompressed weight must equal, bit
// for bit, the kernels' dequantization of qerl's packed tensors; everything
// else must be copied byte for byte; bad input exits 2 with one line.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/bf16.hpp"
#include "kernels/mxfp4.hpp"
#include "kernels/nvfp4.hpp"
#include "models/io/safetensors_header.hpp"

#include "run_tool.hpp"
#include "stored_tensors.hpp"

namespace fs = std::filesystem;
using namespace qerl::test;
using qerl::models::Dtype;

namespace {

fs::path tiny_moe() { return fs::path(QERL_SOURCE_DIR) / "assets" / "tiny-moe"; }

Outcome quantize(const std::string& args, const fs::path& dir) { return run_tool(QERL_QUANTIZE_EXE, args, dir); }

int count_lines(const std::string& text) {
  int lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

float f32_of(const StoredTensor& t) {
  REQUIRE(t.dtype == Dtype::F32);
  REQUIRE(t.bytes.size() == 4);
  float v;
  std::memcpy(&v, t.bytes.data(), 4);
  return v;
}

const uint8_t* u8(const StoredTensor& t) { return reinterpret_cast<const uint8_t*>(t.bytes.data()); }

// qerl-quantize + the compressed-tensors peer on tiny-moe; checks everything
// that holds for every scheme and returns the number of packed Linears.
int64_t check_scheme(const std::string& scheme) {
  CAPTURE(scheme);
  const fs::path dir = scratch_dir("qerl_quantize", scheme);
  const fs::path out = dir / "out", decompressed = dir / "decompressed.safetensors";
  const Outcome o = quantize(tiny_moe().string() + " " + out.string() + " --scheme " + scheme, dir);
  INFO(o.err);
  REQUIRE(o.status == 0);

  const std::string peer = std::string("'") + QERL_PYTHON + "' '" + QERL_TOOLS_TEST_DIR +
                           "/compressed_tensors_load.py' '" + out.string() + "' '" + decompressed.string() + "'";
  const Outcome p = run_tool(peer, "", dir / "");
  INFO(p.out);
  REQUIRE(p.status == 0);

  const bool nvfp4 = scheme != "mxfp4";
  const auto input = read_tensors(tiny_moe() / "model.safetensors");
  const auto written = read_tensors(out / "model.safetensors");
  const auto reference = read_tensors(decompressed);

  std::set<std::string> packed;
  for (const auto& [name, t] : written)
    if (ends_with(name, ".weight_packed")) packed.insert(name.substr(0, name.size() - 14));
  REQUIRE(reference.size() == packed.size());

  for (const std::string& m : packed) {
    CAPTURE(m);
    const StoredTensor& dense = input.at(m + ".weight");
    REQUIRE(dense.shape.size() == 2);
    const int64_t rows = dense.shape[0], cols = dense.shape[1];
    CHECK(written.count(m + ".weight") == 0);
    const StoredTensor& codes = written.at(m + ".weight_packed");
    const StoredTensor& scale = written.at(m + ".weight_scale");
    REQUIRE(codes.dtype == Dtype::U8);
    REQUIRE(codes.shape == std::vector<int64_t>{rows, cols / 2});
    REQUIRE(scale.dtype == (nvfp4 ? Dtype::F8_E4M3 : Dtype::U8));
    REQUIRE(scale.shape == std::vector<int64_t>{rows, cols / (nvfp4 ? 16 : 32)});
    CHECK(written.count(m + ".weight_global_scale") == (nvfp4 ? 1u : 0u));
    CHECK(written.count(m + ".input_global_scale") == (scheme == "nvfp4" ? 1u : 0u));

    std::vector<float> values(static_cast<size_t>(rows * cols));
    if (nvfp4) {
      const StoredTensor& g = written.at(m + ".weight_global_scale");
      REQUIRE(g.shape == std::vector<int64_t>{1});
      qerl::kernels::nvfp4_dequantize(u8(codes), u8(scale), f32_of(g), rows, cols, values.data());
    } else {
      qerl::kernels::mxfp4_dequantize(u8(codes), u8(scale), rows, cols, values.data());
    }
    // compressed-tensors' decompress returns bf16: compare in bf16, bit for bit.
    const StoredTensor& ref = reference.at(m + ".weight");
    REQUIRE(ref.dtype == Dtype::BF16);
    REQUIRE(ref.shape == dense.shape);
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i) bits[i] = qerl::kernels::bf16_bits(values[i]);
    int64_t differ = 0;
    for (size_t i = 0; i < bits.size(); ++i) {
      uint16_t r;
      std::memcpy(&r, ref.bytes.data() + 2 * i, 2);
      differ += r != bits[i];
    }
    CHECK(differ == 0);
  }

  // Fused siblings share one global scale: q/k/v, and gate/up of each expert.
  if (nvfp4) {
    for (const std::string& m : packed) {
      CAPTURE(m);
      const auto g = [&](const std::string& module) { return f32_of(written.at(module + ".weight_global_scale")); };
      const std::string parent = m.substr(0, m.rfind('.') + 1);
      if (ends_with(m, ".k_proj") || ends_with(m, ".v_proj")) CHECK(g(m) == g(parent + "q_proj"));
      if (ends_with(m, ".up_proj")) CHECK(g(m) == g(parent + "gate_proj"));
      if (scheme == "nvfp4") {
        const float in = f32_of(written.at(m + ".input_global_scale"));
        CHECK(std::isfinite(in));
        CHECK(in > 0.f);
      }
    }
  }

  // Every other tensor is copied byte for byte; nothing else appears.
  size_t copied = 0;
  for (const auto& [name, t] : input) {
    CAPTURE(name);
    if (ends_with(name, ".weight") && packed.count(name.substr(0, name.size() - 7))) continue;
    REQUIRE(written.count(name) == 1);
    const StoredTensor& w = written.at(name);
    CHECK(w.dtype == t.dtype);
    CHECK(w.shape == t.shape);
    CHECK(w.bytes == t.bytes);
    ++copied;
  }
  const size_t per_module = nvfp4 ? (scheme == "nvfp4" ? 4 : 3) : 2;
  CHECK(written.size() == copied + per_module * packed.size());

  // config.json: the input's, plus quantization_config; tokenizer files as they were.
  nlohmann::json config = nlohmann::json::parse(slurp(out / "config.json"));
  const nlohmann::json q = config.at("quantization_config");
  CHECK(q.at("quant_method") == "compressed-tensors");
  CHECK(q.at("format") == (nvfp4 ? "nvfp4-pack-quantized" : "mxfp4-pack-quantized"));
  CHECK(q.at("quantization_status") == "compressed");
  const std::vector<std::string> ignore = q.at("ignore");
  CHECK(ignore == std::vector<std::string>{"model.layers.0.mlp.gate", "model.layers.1.mlp.gate",
                                           "model.layers.2.mlp.gate", "model.layers.3.mlp.gate", "lm_head"});
  config.erase("quantization_config");
  CHECK(config == nlohmann::json::parse(slurp(tiny_moe() / "config.json")));
  for (const char* file : {"tokenizer.json", "tokenizer_config.json"}) {
    CAPTURE(file);
    CHECK(slurp(out / file) == slurp(tiny_moe() / file));
  }
  return static_cast<int64_t>(packed.size());
}

}  // namespace

TEST_CASE("qerl-quantize nvfp4a16: compressed-tensors decompresses every packed Linear to qerl's dequantization") {
  CHECK(check_scheme("nvfp4a16") == 4 * (4 + 8 * 3));  // tiny-moe: 4 layers x (q/k/v/o + 8 experts x 3)
}

TEST_CASE("qerl-quantize mxfp4: compressed-tensors decompresses every packed Linear to qerl's dequantization") {
  CHECK(check_scheme("mxfp4") == 4 * (4 + 8 * 3));
}

TEST_CASE("qerl-quantize nvfp4 (W4A4): input_global_scale per Linear, loadable by compressed-tensors") {
  CHECK(check_scheme("nvfp4") == 4 * (4 + 8 * 3));
}

TEST_CASE("qerl-quantize --ignore adds to the default ignores") {
  const fs::path dir = scratch_dir("qerl_quantize", "ignore");
  const fs::path out = dir / "out";
  const Outcome o = quantize(tiny_moe().string() + " " + out.string() +
                                 " --scheme mxfp4 --ignore 're:.*self_attn\\.o_proj$' --ignore 're:.*nothing$'",
                             dir);
  INFO(o.err);
  REQUIRE(o.status == 0);
  CHECK(o.err.find("warning: ignore pattern \"re:.*nothing$\" matched no Linear module") != std::string::npos);
  const auto written = read_tensors(out / "model.safetensors");
  CHECK(written.count("model.layers.2.self_attn.o_proj.weight") == 1);
  CHECK(written.count("model.layers.2.self_attn.o_proj.weight_packed") == 0);
  CHECK(written.count("lm_head.weight") == 1);
  CHECK(written.count("model.layers.2.mlp.gate.weight") == 1);
  const nlohmann::json q = nlohmann::json::parse(slurp(out / "config.json")).at("quantization_config");
  CHECK(q.at("ignore").size() == 4 + 4 + 1);
}

TEST_CASE("qerl-quantize rejects bad input with one line and exit 2") {
  const fs::path dir = scratch_dir("qerl_quantize", "bad_input");
  const std::string model = tiny_moe().string();
  const auto expect_error = [&](const std::string& args, const std::string& message) {
    CAPTURE(args);
    const Outcome o = quantize(args, dir);
    CHECK(o.status == 2);
    CHECK(o.err.find(message) != std::string::npos);
    CHECK(count_lines(o.err) == 1);
    CHECK(o.err.find("terminate") == std::string::npos);
  };
  expect_error((dir / "no_such_model").string() + " " + (dir / "o1").string() + " --scheme nvfp4a16", "no such folder");
  expect_error(model + " " + (dir / "o2").string() + " --scheme int4", "unknown scheme \"int4\"");
  expect_error(model + " " + model + " --scheme nvfp4a16", "OUT_DIR is IN_DIR");
  fs::create_directories(dir / "full");
  std::ofstream(dir / "full" / "keep.txt") << "x";
  expect_error(model + " " + (dir / "full").string() + " --scheme mxfp4", "exists and is not empty");
  CHECK(fs::exists(dir / "full" / "keep.txt"));
  CHECK(!fs::exists(dir / "o1"));
  CHECK(!fs::exists(dir / "o2"));
}
