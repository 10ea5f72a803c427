// qerl-scan: the per-weight statistics (tools/scan/quant_error.hpp) on
// hand-made blocks with known answers and on N(0,1) weights through the
// kernels' NVFP4 / MXFP4 float core, then the real executable on the shipped
// tiny-moe and on a hand-written llama whose input dim 48 MXFP4 cannot group,
// checked against facts read independently from the checkpoint files; a NaN
// or infinite weight is an error naming the tensor, never a table of NaNs.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/mxfp4.hpp"
#include "kernels/nvfp4.hpp"
#include "tools/scan/quant_error.hpp"

#include "run_tool.hpp"
#include "stored_tensors.hpp"

namespace fs = std::filesystem;
using qerl::tools::QuantErrorStats;
using qerl::tools::quant_error_stats;

namespace {

// ---- the statistics through the kernels' float core -------------------------

struct Quantized {
  std::vector<float> q;          // dequantize(quantize(w)), fp32
  std::vector<uint8_t> packed;   // [rows, cols / 2] E2M1 codes
};

// w: [rows, cols] fp32, the tensor's own global scale (as qerl-scan uses it).
Quantized nvfp4(const std::vector<float>& w, int64_t rows, int64_t cols) {
  using namespace qerl::kernels;
  const float g = nvfp4_global_scale(w.data(), rows * cols, WeightDtype::f32);
  Quantized out{std::vector<float>(w.size()), std::vector<uint8_t>(w.size() / 2)};
  std::vector<uint8_t> scales(static_cast<size_t>(rows * cols / nvfp4_group_size));
  nvfp4_quantize(w.data(), rows, cols, g, WeightDtype::f32, out.packed.data(), scales.data());
  nvfp4_dequantize(out.packed.data(), scales.data(), g, rows, cols, out.q.data());
  return out;
}

Quantized mxfp4(const std::vector<float>& w, int64_t rows, int64_t cols,
                qerl::kernels::MxScaleRule rule = qerl::kernels::MxScaleRule::compressed_tensors) {
  using namespace qerl::kernels;
  Quantized out{std::vector<float>(w.size()), std::vector<uint8_t>(w.size() / 2)};
  std::vector<uint8_t> scales(static_cast<size_t>(rows * cols / mxfp4_group_size));
  mxfp4_quantize(w.data(), rows, cols, rule, WeightDtype::f32, out.packed.data(), scales.data());
  mxfp4_dequantize(out.packed.data(), scales.data(), rows, cols, out.q.data());
  return out;
}

QuantErrorStats stats_of(const std::vector<float>& w, const Quantized& q) {
  return quant_error_stats(w.data(), q.q.data(), q.packed.data(), static_cast<int64_t>(w.size()));
}

const float e2m1_values[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

// ---- running qerl-scan --------------------------------------------------------

using qerl::test::Outcome;
using qerl::test::slurp;

fs::path scratch_dir(const std::string& name) { return qerl::test::scratch_dir("qerl_scan_test", name); }

Outcome qerl_scan(const std::string& args, const fs::path& dir) { return qerl::test::run_tool(QERL_SCAN_EXE, args, dir); }

size_t count_lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

// The JSON header of a .safetensors file (little-endian u64 length first).
nlohmann::json safetensors_header(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char size_bytes[8] = {};
  in.read(reinterpret_cast<char*>(size_bytes), 8);
  uint64_t size = 0;
  for (int i = 7; i >= 0; --i) size = size << 8 | size_bytes[i];
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  return nlohmann::json::parse(text);
}

// A 1-layer llama, hidden 48 (MXFP4 cannot group 48 inputs by 32, NVFP4
// can by 16), intermediate 64, vocab 16, random N(0, 0.1) fp32 weights,
// written as config.json + a hand-made model.safetensors.
void write_tiny_llama(const fs::path& dir) {
  fs::create_directories(dir);
  const nlohmann::json config{{"model_type", "llama"},       {"architectures", {"LlamaForCausalLM"}},
                              {"vocab_size", 16},            {"hidden_size", 48},
                              {"intermediate_size", 64},     {"num_hidden_layers", 1},
                              {"num_attention_heads", 2},    {"num_key_value_heads", 2},
                              {"max_position_embeddings", 64}, {"tie_word_embeddings", false},
                              {"dtype", "float32"}};
  std::ofstream(dir / "config.json") << config.dump(2);
  const std::string l = "model.layers.0.";
  const std::map<std::string, std::vector<int64_t>> shapes = {
      {"model.embed_tokens.weight", {16, 48}},   {l + "input_layernorm.weight", {48}},
      {l + "self_attn.q_proj.weight", {48, 48}}, {l + "self_attn.k_proj.weight", {48, 48}},
      {l + "self_attn.v_proj.weight", {48, 48}}, {l + "self_attn.o_proj.weight", {48, 48}},
      {l + "post_attention_layernorm.weight", {48}}, {l + "mlp.gate_proj.weight", {64, 48}},
      {l + "mlp.up_proj.weight", {64, 48}},      {l + "mlp.down_proj.weight", {48, 64}},
      {"model.norm.weight", {48}},               {"lm_head.weight", {16, 48}}};
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, shape] : shapes) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> values(static_cast<size_t>(n));
    for (auto& v : values) v = shape.size() == 1 ? 1.0f : normal(rng);  // norms start at 1
    const size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
    header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream file(dir / "model.safetensors", std::ios::binary);
  for (int i = 0; i < 8; ++i) file.put(static_cast<char>((text.size() >> (8 * i)) & 0xFF));
  file << text << data;
}

std::set<std::string> string_set(const nlohmann::json& array) {
  std::set<std::string> out;
  for (const auto& item : array) out.insert(item.get<std::string>());
  return out;
}

bool is_finite_number(const nlohmann::json& value) {
  return value.is_number() && std::isfinite(value.get<double>());
}

}  // namespace

TEST_CASE("quant_error_stats on hand-made arrays gives the hand-computed energies and counts") {
  // w and q differ in two elements by 0.5 and 1; two nonzero weights map to
  // ±0; the codes mark three elements as ±6 (index 7, sign bit on one).
  const std::vector<float> w = {3.0f, -0.1f, 0.2f, 0.0f, 6.0f, -6.0f, 2.0f, 1.0f};
  const std::vector<float> q = {3.0f, -0.0f, 0.0f, 0.0f, 6.0f, -6.0f, 2.5f, 2.0f};
  const std::vector<uint8_t> packed = {0x05 | 0x80, 0x00, 0x07 | 0xF0, 0x02 | 0x70};
  const QuantErrorStats s = quant_error_stats(w.data(), q.data(), packed.data(), 8);
  CHECK(s.elements == 8);
  CHECK(s.nonzero == 7);
  CHECK(s.deadzone == 2);
  CHECK(s.saturated == 3);
  const double signal = 9 + 0.01 + 0.04 + 36 + 36 + 4 + 1, error = 0.01 + 0.04 + 0.25 + 1;
  CHECK(s.signal_energy == doctest::Approx(signal).epsilon(1e-9));
  CHECK(s.error_energy == doctest::Approx(error).epsilon(1e-6));
  CHECK(s.relative_error() == doctest::Approx(std::sqrt(error / signal)).epsilon(1e-6));
  CHECK(s.sqnr_db() == doctest::Approx(10 * std::log10(signal / error)).epsilon(1e-6));
  CHECK(s.deadzone_fraction() == doctest::Approx(2.0 / 7.0));
  CHECK(s.saturation_fraction() == doctest::Approx(3.0 / 8.0));
}

TEST_CASE("exact E2M1 codes times representable scales quantize losslessly: SQNR inf, error 0") {
  // NVFP4 [1, 32]: block 0 = every code and its negative (amax 6 makes
  // G = 448 and s/G = 1); block 1 = ±0.5 * {0, .., 3}: amax 1.5 gives
  // s = fp8(448 * 1.5 / 6) = 112 and s/G = 0.25, so its values are codes
  // {0, 1, 2, 3, 4, 6} times 0.25, exactly.
  std::vector<float> w;
  for (float v : e2m1_values) w.insert(w.end(), {v, -v});
  for (int i = 0; i < 16; ++i) w.push_back((i % 2 ? -0.5f : 0.5f) * e2m1_values[i % 6]);
  const QuantErrorStats nv = stats_of(w, nvfp4(w, 1, 32));
  CHECK(nv.error_energy == 0.0);
  CHECK(std::isinf(nv.sqnr_db()));
  CHECK(nv.relative_error() == 0.0);
  CHECK(nv.deadzone == 0);
  CHECK(nv.saturated == 4);  // ±6 of block 0, and 1.5 = 6 * 0.25 at i = 5, 11 of block 1

  // MXFP4 [1, 32]: codes * 2^-3 (amax 0.75 = 1.5 * 2^-1 rounds down, e = -3).
  std::vector<float> m;
  for (int i = 0; i < 32; ++i) m.push_back((i % 3 ? 1.0f : -1.0f) * e2m1_values[i % 8] / 8.0f);
  const QuantErrorStats mx = stats_of(m, mxfp4(m, 1, 32));
  CHECK(mx.error_energy == 0.0);
  CHECK(std::isinf(mx.sqnr_db()));
  CHECK(mx.saturated == 4);  // i = 7, 15, 23, 31
  CHECK(mx.nonzero == 28);
}

TEST_CASE("tiny weights next to a large one fall into the deadzone; |x| <= 0.25 * scale rounds to 0") {
  // One NVFP4 block with amax 6 (effective scale 1): 0.2, 0.25 (tie -> even
  // code 0), -0.1 and 1e-3 vanish; 0.26, 0.3, -0.4 become ±0.5; four zeros
  // are not counted as nonzero.
  const std::vector<float> w = {6.0f, 0.2f, 0.25f, -0.1f, 1e-3f, 0.26f, 0.3f, -0.4f,
                                0.0f, 0.0f, 0.0f,  0.0f,  1.0f,  2.0f,  3.0f, 4.0f};
  const Quantized q = nvfp4(w, 1, 16);
  const QuantErrorStats s = stats_of(w, q);
  CHECK(s.nonzero == 12);
  CHECK(s.deadzone == 4);
  CHECK(s.deadzone_fraction() == doctest::Approx(1.0 / 3.0));
  CHECK(s.saturated == 1);
  CHECK(q.q[5] == 0.5f);
  CHECK(q.q[7] == -0.5f);
}

TEST_CASE("saturation counts the elements at code 6, and depends on the MXFP4 scale rule") {
  // amax 6 -> scale 1 under both rules: 6, 5.5 (> 5), -6, -5.01 saturate;
  // 5.0 (tie -> 4) and 4.9 do not.
  std::vector<float> w(32, 1.0f);
  const float head[] = {6.0f, 5.5f, 5.0f, -6.0f, -5.01f, 4.9f};
  std::copy(std::begin(head), std::end(head), w.begin());
  CHECK(stats_of(w, mxfp4(w, 1, 32)).saturated == 4);
  CHECK(stats_of(w, mxfp4(w, 1, 32, qerl::kernels::MxScaleRule::ocp)).saturated == 4);
  // amax 7.5: compressed-tensors rounds it up to 8 (scale 2, 7.5 / 2 -> 4,
  // nothing saturates); OCP keeps scale 1 and clips 7.5 to 6.
  w[0] = 7.5f;
  w[1] = w[3] = w[4] = 1.0f;
  CHECK(stats_of(w, mxfp4(w, 1, 32)).saturated == 0);
  CHECK(stats_of(w, mxfp4(w, 1, 32, qerl::kernels::MxScaleRule::ocp)).saturated == 1);
}

TEST_CASE("N(0,1) 64x4096: NVFP4 relative error ~0.095, MXFP4 ~0.112; totals add element-weighted") {
  const int64_t rows = 64, cols = 4096;
  std::mt19937 rng(2024);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (auto& v : w) v = normal(rng);
  const QuantErrorStats nv = stats_of(w, nvfp4(w, rows, cols));
  const QuantErrorStats mx = stats_of(w, mxfp4(w, rows, cols));
  MESSAGE("nvfp4 rel ", nv.relative_error(), " (", nv.sqnr_db(), " dB), mxfp4 rel ", mx.relative_error(), " (",
          mx.sqnr_db(), " dB)");
  CHECK(nv.relative_error() > 0.090);
  CHECK(nv.relative_error() < 0.100);
  CHECK(mx.relative_error() > 0.107);
  CHECK(mx.relative_error() < 0.118);
  CHECK(nv.sqnr_db() == doctest::Approx(-20 * std::log10(nv.relative_error())).epsilon(1e-9));
  CHECK(nv.saturation_fraction() >= 1.0 / 16.0);  // each block's amax lands on code 6
  CHECK(nv.deadzone_fraction() > 0.0);
  CHECK(nv.deadzone_fraction() < 0.2);

  // The NVFP4 stats of the two row halves (same global scale: computed on
  // the whole tensor) add up to those of the whole tensor.
  const Quantized whole = nvfp4(w, rows, cols);
  const int64_t half = rows / 2 * cols;
  QuantErrorStats sum = quant_error_stats(w.data(), whole.q.data(), whole.packed.data(), half);
  sum += quant_error_stats(w.data() + half, whole.q.data() + half, whole.packed.data() + half / 2, half);
  CHECK(sum.elements == nv.elements);
  CHECK(sum.deadzone == nv.deadzone);
  CHECK(sum.saturated == nv.saturated);
  CHECK(sum.relative_error() == doctest::Approx(nv.relative_error()).epsilon(1e-9));
}

TEST_CASE("qerl-scan on tiny-moe: every non-ignored Linear, finite values, NVFP4 below MXFP4") {
  const fs::path dir = scratch_dir("tiny_moe");
  const fs::path model = fs::path(QERL_SOURCE_DIR) / "assets" / "tiny-moe";
  const fs::path json_file = dir / "out" / "scan.json";
  const Outcome o =
      qerl_scan(model.string() + " --json " + json_file.string() + " --top 5 --ignore 're:.*no_such_module$'", dir);
  INFO(o.err);
  REQUIRE(o.status == 0);
  CHECK(o.err.find("warning: --ignore pattern \"re:.*no_such_module$\" matched no Linear module") !=
        std::string::npos);
  CHECK(o.out.find("most sensitive layers") != std::string::npos);
  CHECK(o.out.find("summary nvfp4:") != std::string::npos);
  CHECK(o.out.find("summary mxfp4:") != std::string::npos);

  // Linear weights read from the checkpoint: every 2-D "*.weight" but the
  // embedding; lm_head and the routers (mlp.gate) are ignored by default.
  std::set<std::string> expected, expected_ignored;
  const nlohmann::json checkpoint = safetensors_header(model / "model.safetensors");
  for (const auto& item : checkpoint.items()) {
    const std::string key = item.key(), suffix = ".weight";
    if (key == "__metadata__" || item.value().at("shape").size() != 2) continue;
    REQUIRE(key.size() > suffix.size());
    REQUIRE(key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0);
    const std::string module = key.substr(0, key.size() - suffix.size());
    if (module == "model.embed_tokens") continue;
    const bool router = module.size() > 9 && module.compare(module.size() - 9, 9, ".mlp.gate") == 0;
    ((module == "lm_head" || router) ? expected_ignored : expected).insert(module);
  }
  REQUIRE(expected.size() == 4 * (4 + 3 * 8));  // tiny-moe: 4 layers of q/k/v/o + 8 experts x 3

  const nlohmann::json report = nlohmann::json::parse(slurp(json_file));
  std::set<std::string> scanned;
  std::map<std::string, int64_t> routed_per_layer;  // over the gate_proj of each layer's experts
  for (const auto& layer : report.at("layers")) {
    const std::string name = layer.at("name");
    CAPTURE(name);
    CHECK(scanned.insert(name).second);
    // An expert no calibration token reaches cannot change the logits.
    const bool reached = !layer.at("routed_tokens").is_number_integer() || layer.at("routed_tokens") != 0;
    for (const char* scheme : {"nvfp4", "mxfp4"}) {
      CAPTURE(scheme);
      const auto& r = layer.at("schemes").at(scheme);
      REQUIRE_FALSE(r.contains("skipped"));
      for (const char* key : {"sqnr_db", "relative_error", "deadzone", "saturation", "output_relative_error",
                              "output_kl"})
        CHECK_MESSAGE(is_finite_number(r.at(key)), key);
      CHECK(r.at("relative_error").get<double>() > 0.0);
      CHECK(r.at("relative_error").get<double>() < 0.5);
      if (reached)
        CHECK(r.at("output_relative_error").get<double>() > 0.0);
      else
        CHECK(r.at("output_relative_error").get<double>() == 0.0);
      CHECK(r.at("output_kl").get<double>() >= 0.0);
    }
    if (name.find(".experts.") != std::string::npos) {
      REQUIRE(layer.at("routed_tokens").is_number_integer());
      if (name.find("gate_proj") != std::string::npos)
        routed_per_layer[name.substr(0, name.find(".mlp."))] += layer.at("routed_tokens").get<int64_t>();
    } else {
      CHECK(layer.at("routed_tokens").is_null());
    }
  }
  CHECK(scanned == expected);
  CHECK(string_set(report.at("ignored")) == expected_ignored);
  // Each calibration token (8 prompts x 32) picks top-2 experts in every layer.
  CHECK(routed_per_layer.size() == 4);
  for (const auto& [layer, tokens] : routed_per_layer) CHECK_MESSAGE(tokens == 8 * 32 * 2, layer);

  const auto& nv = report.at("summary").at("nvfp4");
  const auto& mx = report.at("summary").at("mxfp4");
  CHECK(nv.at("weights") == expected.size());
  CHECK(nv.at("relative_error").get<double>() < mx.at("relative_error").get<double>());
  CHECK(nv.at("sqnr_db").get<double>() > mx.at("sqnr_db").get<double>());
  CHECK(report.at("ranking_scheme") == "nvfp4");

  // Every weight is restored after its pass: scanning without layer 0's
  // attention leaves every other layer's numbers bit-identical.
  const fs::path partial = dir / "partial.json";
  const Outcome p = qerl_scan(model.string() + " --top 0 --json " + partial.string() +
                                  " --ignore 're:model\\.layers\\.0\\.self_attn\\..*'",
                              dir);
  REQUIRE(p.status == 0);
  std::map<std::string, nlohmann::json> full;
  for (const auto& layer : report.at("layers")) full[layer.at("name")] = layer.at("schemes");
  const nlohmann::json partial_report = nlohmann::json::parse(slurp(partial));
  CHECK(partial_report.at("layers").size() == expected.size() - 4);
  for (const auto& layer : partial_report.at("layers")) {
    CAPTURE(layer.at("name"));
    CHECK(layer.at("schemes") == full.at(layer.at("name")));
  }
}

TEST_CASE("qerl-scan skips (with the reason) a weight whose input dim the group size does not divide") {
  const fs::path dir = scratch_dir("llama48");
  write_tiny_llama(dir / "model");
  const fs::path json_file = dir / "scan.json";
  const Outcome o = qerl_scan((dir / "model").string() + " --prompts 2 --json " + json_file.string() +
                                  " --ignore model.layers.0.mlp.down_proj",
                              dir);
  INFO(o.err);
  REQUIRE(o.status == 0);
  CHECK(o.out.find("skipped:") != std::string::npos);
  const nlohmann::json report = nlohmann::json::parse(slurp(json_file));
  REQUIRE(report.at("layers").size() == 6);  // q, k, v, o, gate, up (down_proj and lm_head ignored)
  for (const auto& layer : report.at("layers")) {
    CAPTURE(layer.at("name"));
    CHECK(layer.at("schemes").at("nvfp4").at("output_relative_error").get<double>() > 0.0);
    const auto& mx = layer.at("schemes").at("mxfp4");
    REQUIRE(mx.contains("skipped"));
    CHECK(mx.at("skipped").get<std::string>().find("input dim 48 is not a multiple of the mxfp4 group size 32") !=
          std::string::npos);
  }
  const std::set<std::string> ignored = {"lm_head", "model.layers.0.mlp.down_proj"};
  CHECK(string_set(report.at("ignored")) == ignored);
  CHECK(report.at("summary").at("mxfp4").at("weights") == 0);
  CHECK(report.at("summary").at("mxfp4").at("skipped") == 6);
  CHECK(report.at("summary").at("mxfp4").at("relative_error").is_null());
  CHECK(o.out.find("summary mxfp4: no weight scanned (6 skipped)") != std::string::npos);
}

TEST_CASE("qerl-scan rejects bad input with one line and a non-zero exit") {
  const fs::path dir = scratch_dir("bad_input");
  const Outcome missing = qerl_scan((dir / "no_such_model").string(), dir);
  CHECK(missing.status == 2);
  CHECK(missing.err.find("no such folder") != std::string::npos);
  CHECK(count_lines(missing.err) == 1);

  const std::string model = (fs::path(QERL_SOURCE_DIR) / "assets" / "tiny-moe").string();
  const Outcome scheme = qerl_scan(model + " --schemes nvfp4,int8", dir);
  CHECK(scheme.status == 2);
  CHECK(scheme.err.find("unknown scheme \"int8\"") != std::string::npos);
  CHECK(count_lines(scheme.err) == 1);

  fs::create_directories(dir / "broken");
  std::ofstream(dir / "broken" / "config.json") << "{\"model_type\": ";
  const Outcome config = qerl_scan((dir / "broken").string(), dir);
  CHECK(config.status == 2);
  CHECK(config.err.find("config.json") != std::string::npos);
  CHECK(count_lines(config.err) == 1);
  CHECK(config.err.find("terminate") == std::string::npos);
}

TEST_CASE("qerl-scan refuses a model with a NaN or infinite weight, naming the tensor") {
  const fs::path dir = scratch_dir("non_finite");
  std::mt19937_64 rng(11);
  const struct {
    const char* tensor;
    int64_t elements;
    float value;
  } plants[] = {{"model.layers.0.mlp.down_proj.weight", 48 * 64, std::numeric_limits<float>::quiet_NaN()},
                {"model.layers.0.self_attn.k_proj.weight", 48 * 48, -std::numeric_limits<float>::infinity()},
                {"model.embed_tokens.weight", 16 * 48, std::numeric_limits<float>::infinity()}};
  for (const auto& plant : plants) {
    CAPTURE(std::string(plant.tensor));
    const fs::path model = dir / "model";
    fs::remove_all(model);
    write_tiny_llama(model);
    const Outcome clean = qerl_scan(model.string() + " --prompts 1 --top 0", dir);
    INFO(clean.err);
    REQUIRE(clean.status == 0);  // the intact model scans
    const int64_t index = std::uniform_int_distribution<int64_t>(0, plant.elements - 1)(rng);
    qerl::test::overwrite_f32(model / "model.safetensors", plant.tensor, index, plant.value);
    const Outcome o = qerl_scan(model.string() + " --prompts 1 --json " + (dir / "report.json").string(), dir);
    INFO(o.err);
    CHECK(o.status == 2);
    CHECK(o.err.find(std::string("tensor ") + plant.tensor + ": 1 of " + std::to_string(plant.elements) +
                     " values are NaN or infinite") != std::string::npos);
    CHECK(count_lines(o.err) == 1);
    CHECK(o.out.find("summary") == std::string::npos);
    CHECK(!fs::exists(dir / "report.json"));
  }
}
