// qerl-quantize: writes an HF checkpoint folder as a compressed-tensors
// checkpoint (nvfp4-pack-quantized or mxfp4-pack-quantized) that
// compressed-tensors, transformers and vLLM load: every Linear that
// plan_quantization selects is stored packed (weight_packed, weight_scale,
// NVFP4 weight_global_scale with fused q/k/v and gate/up scales, W4A4
// input_global_scale), every other tensor is copied unchanged.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "common/error.hpp"
#include "models/io/checkpoint.hpp"
#include "models/nn/linear.hpp"
#include "models/nn/weights.hpp"
#include "models/quant/quantize_model.hpp"
#include "tools/hf_folder.hpp"
#include "tools/tool_errors.hpp"

namespace fs = std::filesystem;
using namespace qerl;
using nlohmann::json;

namespace {

using tools::exit_bad_input;
using tools::exit_internal_error;
constexpr int64_t calibration_prompts = 8;   // W4A4 input scales: prompts of one forward
constexpr int64_t calibration_length = 32;   // token ids per prompt
constexpr uint64_t calibration_seed = 0;
constexpr const char* compressed_tensors_version = "0.20.1";  // the layout we follow

struct Options {
  std::string in_dir;
  std::string out_dir;
  std::string scheme;
  std::vector<std::string> ignores;
};

// The three schemes, as compressed-tensors' presets NVFP4A16, NVFP4, MXFP4A16.
struct Scheme {
  models::QuantScheme quant;
  bool w4a4 = false;
  const char* format;  // CompressionFormat value
};

Scheme parse_scheme(const std::string& text) {
  if (text == "nvfp4a16") return {models::QuantScheme::nvfp4, false, "nvfp4-pack-quantized"};
  if (text == "nvfp4") return {models::QuantScheme::nvfp4, true, "nvfp4-pack-quantized"};
  if (text == "mxfp4") return {models::QuantScheme::mxfp4, false, "mxfp4-pack-quantized"};
  throw Error("--scheme: unknown scheme \"" + text + "\" (known: nvfp4a16, nvfp4, mxfp4)");
}

// QuantizationArgs as compressed-tensors 0.20.1 serializes its presets
// (zp_dtype is dropped for symmetric args, unset optional fields omitted).
json weight_args(const Scheme& s) {
  const bool nv = s.quant == models::QuantScheme::nvfp4;
  return {{"num_bits", 4},
          {"type", "float"},
          {"symmetric", true},
          {"group_size", nv ? 16 : 32},
          {"strategy", nv ? "tensor_group" : "group"},
          {"dynamic", false},
          {"scale_dtype", nv ? "torch.float8_e4m3fn" : "torch.uint8"}};
}

json quantization_config(const Scheme& s, const std::vector<std::string>& ignore) {
  json input = nullptr;
  if (s.w4a4) {
    input = {{"num_bits", 4},          {"type", "float"},       {"symmetric", true},
             {"group_size", 16},       {"strategy", "tensor_group"}, {"dynamic", "local"},
             {"scale_dtype", "torch.float8_e4m3fn"}, {"observer", "static_minmax"}};
  }
  json group = {{"targets", {"Linear"}},
                {"weights", weight_args(s)},
                {"input_activations", input},
                {"output_activations", nullptr},
                {"format", s.format}};
  return {{"version", compressed_tensors_version},
          {"quant_method", "compressed-tensors"},
          {"sparsity_config", json::object()},
          {"transform_config", json::object()},
          {"config_groups", {{"group_0", group}}},
          {"kv_cache_scheme", nullptr},
          {"format", s.format},
          {"quantization_status", "compressed"},
          {"global_compression_ratio", nullptr},
          {"ignore", ignore},
          {"moe_sparsity_config", nullptr}};
}

// 8 x 32 token ids, uniform over the vocabulary, seeded (as qerl-scan's).
torch::Tensor calibration_ids(int64_t vocab_size, int64_t length) {
  std::mt19937_64 rng(calibration_seed);
  std::uniform_int_distribution<int64_t> token(0, vocab_size - 1);
  std::vector<int64_t> ids(static_cast<size_t>(calibration_prompts * length));
  for (auto& id : ids) id = token(rng);
  return torch::tensor(ids, torch::kLong).view({calibration_prompts, length});
}

int run(const Options& opt) {
  const Scheme scheme = parse_scheme(opt.scheme);
  const fs::path in = opt.in_dir, out = opt.out_dir;
  tools::check_output_folder(in, out, "IN_DIR");

  models::Checkpoint checkpoint = models::load_checkpoint(in);
  models::CausalLM lm = models::load_causal_lm(in);  // config's dtype, CPU, eval mode
  models::TensorMap tensors = models::to_qerl_layout(checkpoint.tensors, lm->config());

  models::QuantSpec spec;
  spec.scheme = scheme.quant;
  spec.quantize_inputs = scheme.w4a4;
  spec.ignore.insert(spec.ignore.end(), opt.ignores.begin(), opt.ignores.end());
  models::QuantSummary summary;
  const std::vector<models::QuantTarget> targets = models::plan_quantization(*lm, spec, &summary);
  for (const auto& pattern : summary.unmatched_ignores)  // the defaults need not match every model
    if (std::find(opt.ignores.begin(), opt.ignores.end(), pattern) != opt.ignores.end())
      std::fprintf(stderr, "qerl-quantize: warning: ignore pattern \"%s\" matched no Linear module\n", pattern.c_str());
  if (targets.empty()) throw Error(opt.in_dir + ": no Linear module to quantize (all ignored or unsupported)");

  // Linear modules left in full precision, in module order: compressed-tensors' ignore list.
  std::set<std::string> quantized;
  for (const auto& t : targets) quantized.insert(t.name);
  std::vector<std::string> ignore;
  for (const auto& item : lm->named_modules(/*name_prefix=*/"", /*include_self=*/false))
    if (item.value()->as<models::LinearImpl>() != nullptr && quantized.count(item.key()) == 0)
      ignore.push_back(item.key());

  // W4A4: input global scales from one calibration forward of the packed model.
  std::map<std::string, float> input_scales;
  if (scheme.w4a4) {
    const auto& config = lm->config();
    const int64_t length = config.max_position_embeddings > 0
                               ? std::min(calibration_length, config.max_position_embeddings)
                               : calibration_length;
    const torch::Tensor ids = calibration_ids(config.vocab_size, length);
    models::PackedBase base(*lm, spec);
    base.calibrate_inputs(ids, torch::ones_like(ids));
    for (const auto& t : targets) input_scales[t.name] = base.input_global_scale(t.name);
  }

  for (const auto& t : targets)
    if (tensors.erase(t.name + ".weight") == 0)
      throw Error(opt.in_dir + ": no tensor " + t.name + ".weight in the checkpoint");
  for (auto& [name, tensor] : models::pack_weights(targets, spec)) tensors[name] = tensor;
  for (const auto& [name, scale] : input_scales)
    tensors[name + ".input_global_scale"] = torch::full({1}, scale, torch::kFloat32);

  json config = checkpoint.config;
  config["quantization_config"] = quantization_config(scheme, ignore);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw Error(opt.out_dir + ": cannot create: " + ec.message());
  models::save_checkpoint(out, config, tensors);

  const int64_t copied_files = tools::copy_other_files(in, out);
  std::cout << "qerl-quantize " << opt.in_dir << " -> " << opt.out_dir << ": " << opt.scheme << " ("
            << scheme.format << "), " << summary.describe(scheme.quant) << "; " << ignore.size()
            << " Linear modules in the ignore list; " << copied_files << " other files copied"
            << (scheme.w4a4 ? "; input scales calibrated on 8 x " + std::to_string(calibration_length) +
                                  " random token ids (seed 0)"
                            : std::string())
            << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "qerl-quantize: write an HF checkpoint folder as a compressed-tensors checkpoint.\n"
      "Schemes (compressed-tensors presets): nvfp4a16 = NVFP4A16 (nvfp4-pack-quantized, weights only),\n"
      "nvfp4 = NVFP4 (W4A4: adds input_global_scale, calibrated on one forward of 8 seeded random prompts\n"
      "of 32 token ids through the packed model), mxfp4 = MXFP4A16 (mxfp4-pack-quantized).\n"
      "Each quantized Linear stores weight_packed (uint8 [out, in/2]) and weight_scale (F8_E4M3 [out, in/16]\n"
      "for NVFP4, E8M0 uint8 [out, in/32] for MXFP4); NVFP4 adds weight_global_scale (the divisor G, shared\n"
      "by q/k/v and by gate/up). All other tensors and files (tokenizer, ...) are copied unchanged."};
  Options opt;
  app.add_option("IN_DIR", opt.in_dir, "HF checkpoint folder (config.json + safetensors)")->required();
  app.add_option("OUT_DIR", opt.out_dir, "new folder for the quantized checkpoint (absent or empty)")->required();
  app.add_option("--scheme", opt.scheme, "nvfp4a16 | nvfp4 | mxfp4")->required();
  app.add_option("--ignore", opt.ignores,
                 "Linear modules to keep in full precision: exact name or re:<regex> (anchored at the start); "
                 "repeatable. ADDED to the default ignores (lm_head, re:.*mlp\\.gate$, re:.*shared_expert_gate$), "
                 "which always apply");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return tools::report_errors("qerl-quantize", [&] { return run(opt); });
}
