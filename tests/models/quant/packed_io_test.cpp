// Stored codes on tiny random MoEs with fresh seeded weights: a packed base
// built from another base's packed_tensors() (the QAT weight-sync format,
// rollout checkpoints, compressed-tensors folders) computes exactly what the
// packing base computes and overwrites the dense weights with the codes'
// dequantization; repack() then packs only what changed; bad stored tensors
// fail with one line. compressed-tensors configs: what is accepted and what
// is refused; folders written in that layout load as their dequantization.
#include <doctest/doctest.h>

#include <filesystem>
#include <unistd.h>

#include "common/error.hpp"
#include "kernels/quantize_tensor.hpp"
#include "models/io/checkpoint.hpp"
#include "models/quant/compressed_tensors.hpp"
#include "models/quant/quantize_model.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl;
using namespace qerl::models;
namespace fs = std::filesystem;

namespace {

QuantSpec stored_spec(QuantScheme scheme, bool w4a4 = false) {
  QuantSpec spec;
  spec.scheme = scheme;
  spec.quantize_inputs = w4a4;
  return spec;
}

torch::Tensor stored_logits(CausalLMImpl& lm, const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  ForwardArgs args;
  args.input_ids = ids;
  return lm.forward(args).logits;
}

// `twin` gets `source`'s dense weights, then noise on every Linear `spec`
// quantizes: only stored codes can make it compute like `source` again.
void perturbed_copy(CausalLMImpl& source, CausalLMImpl& twin, const QuantSpec& spec) {
  load_weights(twin, export_weights(source));
  torch::NoGradGuard no_grad;
  for (const auto& t : plan_quantization(twin, spec, nullptr)) t.linear->weight.add_(torch::randn_like(t.linear->weight));
}

bool same_tensors(const TensorMap& a, const TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    const auto it = b.find(name);
    if (it == b.end() || it->second.scalar_type() != t.scalar_type()) return false;
    if (!torch::equal(it->second.view(torch::kUInt8), t.view(torch::kUInt8))) return false;
  }
  return true;
}

std::string error_text(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

fs::path scratch_folder(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("qerl_packed_io_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A quantization_config as compressed-tensors 0.20.1 writes for its NVFP4 / MXFP4 presets.
nlohmann::json ct_quant_config(const std::string& format, bool w4a4, const std::vector<std::string>& ignore) {
  const bool nv = format == "nvfp4-pack-quantized";
  const nlohmann::json weights = {{"num_bits", 4},      {"type", "float"}, {"symmetric", true},
                                  {"group_size", nv ? 16 : 32}, {"strategy", nv ? "tensor_group" : "group"},
                                  {"dynamic", false}};
  nlohmann::json inputs = nullptr;
  if (w4a4) inputs = {{"num_bits", 4}, {"type", "float"}, {"symmetric", true}, {"group_size", 16},
                      {"strategy", "tensor_group"}, {"dynamic", "local"}};
  return {{"quant_method", "compressed-tensors"},
          {"format", format},
          {"quantization_status", "compressed"},
          {"config_groups",
           {{"group_0", {{"targets", {"Linear"}}, {"weights", weights}, {"input_activations", inputs},
                         {"output_activations", nullptr}, {"format", format}}}}},
          {"kv_cache_scheme", nullptr},
          {"sparsity_config", nlohmann::json::object()},
          {"ignore", ignore}};
}

}  // namespace

TEST_CASE("stored codes: a base loaded from packed_tensors() computes exactly what the packing base does") {
  for (auto scheme : {QuantScheme::nvfp4, QuantScheme::mxfp4}) {
    for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
      CAPTURE(quant_scheme_name(scheme));
      const std::string dtype_name = c10::toString(dtype);
      CAPTURE(dtype_name);
      const auto spec = stored_spec(scheme);
      auto source = testing::tiny_model("qwen3_moe", /*seed=*/11, dtype);
      auto twin = testing::tiny_model("qwen3_moe", /*seed=*/12, dtype);
      perturbed_copy(*source, *twin, spec);
      const auto ids = torch::randint(3, 97, {2, 9}, torch::kLong);
      PackedBase packing(*source, spec);
      const TensorMap stored = packing.packed_tensors();
      REQUIRE(packing.sqnr_db().has_value());
      REQUIRE(stored_logits(*twin, ids).sub(stored_logits(*source, ids)).abs().max().item<double>() > 1e-2);

      PackedBase loaded(*twin, spec, stored);
      CHECK(loaded.summary().quantized == packing.summary().quantized);
      CHECK(loaded.summary().ignored == packing.summary().ignored);
      CHECK(loaded.summary().unsupported == packing.summary().unsupported);
      CHECK(torch::equal(stored_logits(*twin, ids), stored_logits(*source, ids)));
      CHECK_FALSE(loaded.sqnr_db().has_value());  // the dense originals are not known here
      for (const auto& t : loaded.targets())      // the dense copy now agrees with the codes
        REQUIRE(torch::equal(t.linear->weight, t.linear->effective_weight()));
      loaded.repack();  // nothing changed: the stored codes stay
      CHECK(same_tensors(loaded.packed_tensors(), stored));

      // One expert's up_proj changes: its gate/up group repacks, nothing else does.
      const std::string changed = "model.layers.1.mlp.experts.3";
      LinearImpl* up = nullptr;
      for (const auto& t : loaded.targets())
        if (t.name == changed + ".up_proj") up = t.linear;
      REQUIRE(up != nullptr);
      {
        torch::NoGradGuard no_grad;
        up->weight.mul_(1.5);
      }
      loaded.repack();
      const TensorMap after = loaded.packed_tensors();
      for (const auto& [name, t] : after) {
        const bool in_group = name.rfind(changed + ".up_proj.", 0) == 0 || name.rfind(changed + ".gate_proj.", 0) == 0;
        CAPTURE(name);
        const bool same = torch::equal(t.view(torch::kUInt8), stored.at(name).view(torch::kUInt8));
        if (!in_group) REQUIRE(same);
        if (name == changed + ".up_proj.weight_packed") CHECK_FALSE(same);
      }
      CHECK_FALSE(loaded.sqnr_db().has_value());  // other codes are still the stored ones
    }
  }
}

TEST_CASE("stored codes: W4A4 input scales travel with the codes") {
  const auto spec = stored_spec(QuantScheme::nvfp4, /*w4a4=*/true);
  auto source = testing::tiny_model("qwen3_moe", /*seed=*/13);
  auto twin = testing::tiny_model("qwen3_moe", /*seed=*/14);
  perturbed_copy(*source, *twin, spec);
  PackedBase packing(*source, spec);
  CHECK(packing.packed_tensors().count("model.layers.0.self_attn.q_proj.input_global_scale") == 0);  // not yet calibrated
  const auto calib = torch::randint(3, 97, {3, 10}, torch::kLong);
  packing.calibrate_inputs(calib, torch::ones_like(calib));
  const TensorMap stored = packing.packed_tensors();
  const auto scale = stored.at("model.layers.0.self_attn.q_proj.input_global_scale");
  CHECK(scale.item<float>() == packing.input_global_scale("model.layers.0.self_attn.q_proj"));
  PackedBase loaded(*twin, spec, stored);
  CHECK(loaded.inputs_calibrated());
  CHECK(loaded.input_global_scale("model.layers.2.mlp.experts.1.down_proj") ==
        packing.input_global_scale("model.layers.2.mlp.experts.1.down_proj"));
  const auto ids = torch::randint(3, 97, {2, 9}, torch::kLong);
  CHECK(torch::equal(stored_logits(*twin, ids), stored_logits(*source, ids)));
}

TEST_CASE("stored codes: missing, mis-shaped or stray tensors fail with one line") {
  const auto spec = stored_spec(QuantScheme::nvfp4);
  auto source = testing::tiny_model("qwen3_moe", /*seed=*/15);
  const std::string q = "model.layers.0.self_attn.q_proj";
  TensorMap stored;
  {
    PackedBase packing(*source, spec);
    stored = packing.packed_tensors();
  }
  PackedBase base(*source, spec);
  auto without = stored;
  without.erase(q + ".weight_scale");
  CHECK(error_text([&] { base.load_packed(without); }) == "packed weights: " + q + ".weight_scale is missing");
  auto bad_shape = stored;
  bad_shape[q + ".weight_packed"] = stored.at(q + ".weight_packed").narrow(1, 0, 8);
  CHECK(error_text([&] { base.load_packed(bad_shape); }).find(q + ".weight_packed has shape [32, 8]") != std::string::npos);
  auto stray = stored;
  stray["model.layers.0.mlp.gate.weight_packed"] = stored.at(q + ".weight_packed");
  CHECK(error_text([&] { base.load_packed(stray); }) ==
        "packed weights: model.layers.0.mlp.gate.weight_packed belongs to no packed Linear of this model");
  auto inputs = stored;
  inputs[q + ".input_global_scale"] = torch::ones({1});
  CHECK(error_text([&] { base.load_packed(inputs); }).find("inputs are not quantized (W4A16)") != std::string::npos);
  CHECK(error_text([&] { PackedBase mx(*source, stored_spec(QuantScheme::mxfp4), stored); })
            .find("weight_global_scale given for MXFP4") != std::string::npos);
  TensorMap unknown_module = {{"model.layers.9.self_attn.q_proj.weight_packed", stored.at(q + ".weight_packed")}};
  CHECK(error_text([&] { PackedBase unknown(*source, spec, unknown_module); }) ==
        "packed tensors for model.layers.9.self_attn.q_proj, which the model does not have");
}

TEST_CASE("compressed-tensors config: the NVFP4 / MXFP4 presets are read; anything else is refused by key") {
  CHECK_FALSE(read_compressed_tensors_config({{"model_type", "qwen3_moe"}}, "c.json").has_value());
  const auto nv = read_compressed_tensors_config({{"quantization_config", ct_quant_config("nvfp4-pack-quantized", true, {"lm_head"})}},
                                                 "c.json");
  REQUIRE(nv.has_value());
  CHECK(nv->spec.scheme == QuantScheme::nvfp4);
  CHECK(nv->spec.quantize_inputs);
  CHECK(nv->spec.ignore == std::vector<std::string>{"lm_head"});
  const auto mx = read_compressed_tensors_config({{"quantization_config", ct_quant_config("mxfp4-pack-quantized", false, {})}},
                                                 "c.json");
  REQUIRE(mx.has_value());
  CHECK(mx->spec.scheme == QuantScheme::mxfp4);
  CHECK_FALSE(mx->spec.quantize_inputs);

  const auto refused = [](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json q = ct_quant_config("nvfp4-pack-quantized", false, {});
    edit(q);
    return error_text([&] { read_compressed_tensors_config({{"quantization_config", q}}, "m/config.json"); });
  };
  CHECK(refused([](auto& q) { q["quant_method"] = "gptq"; }) ==
        "m/config.json: quantization_config.quant_method: expected \"compressed-tensors\", got \"gptq\"");
  CHECK(refused([](auto& q) { q["quantization_status"] = "frozen"; }).find("quantization_status: expected \"compressed\"") !=
        std::string::npos);
  CHECK(refused([](auto& q) {
          q["format"] = "pack-quantized";
          q["config_groups"]["group_0"].erase("format");
        }).find("format: expected \"nvfp4-pack-quantized\" or \"mxfp4-pack-quantized\", got \"pack-quantized\"") !=
        std::string::npos);
  CHECK(refused([](auto& q) { q["config_groups"]["group_0"]["weights"]["group_size"] = 32; }) ==
        "m/config.json: quantization_config.config_groups.group_0.weights.group_size: expected 16 (16-element FP4 "
        "groups), got 32");
  CHECK(refused([](auto& q) { q["config_groups"]["group_0"]["weights"]["num_bits"] = 8; }).find("weights.num_bits") !=
        std::string::npos);
  CHECK(refused([](auto& q) { q["kv_cache_scheme"] = {{"num_bits", 8}}; }).find("kv_cache_scheme") != std::string::npos);
  CHECK(refused([](auto& q) { q["config_groups"]["group_1"] = q["config_groups"]["group_0"]; })
            .find("config_groups: expected exactly one group") != std::string::npos);
  CHECK(refused([](auto& q) { q["config_groups"]["group_0"]["targets"] = {"re:.*proj$"}; })
            .find("targets: expected [\"Linear\"]") != std::string::npos);
}

TEST_CASE("compressed-tensors folder: loads as the dequantized codes; dense loaders refuse it; saving drops the config") {
  auto source = testing::tiny_model("qwen3_moe", /*seed=*/16);
  const auto spec = stored_spec(QuantScheme::nvfp4);
  const auto targets = plan_quantization(*source, spec, nullptr);
  TensorMap tensors = export_weights(*source);
  for (const auto& t : targets) tensors.erase(t.name + ".weight");
  const TensorMap packed = pack_weights(targets, spec);
  for (const auto& [name, t] : packed) tensors[name] = t;
  nlohmann::json config = testing::tiny_config("qwen3_moe");
  config["quantization_config"] = ct_quant_config("nvfp4-pack-quantized", false, {"lm_head"});
  const fs::path dir = scratch_folder("folder");
  save_checkpoint(dir, config, tensors);

  LoadedModel loaded = load_model_folder(dir);
  REQUIRE(loaded.quantization.has_value());
  CHECK(same_tensors(loaded.packed, packed));
  const auto scales = fused_global_scales(targets, spec);
  auto params = loaded.lm->named_parameters();
  for (const auto& t : targets)
    REQUIRE(torch::equal(params[t.name + ".weight"],
                         kernels::nvfp4_fake_quantize(t.linear->weight.detach(), scales.at(t.fusion_group))));
  CHECK(torch::equal(params["lm_head.weight"], source->lm_head->weight));

  CHECK(error_text([&] { load_causal_lm(dir); }).find("quantization_config: a quantized checkpoint") != std::string::npos);
  const fs::path saved = scratch_folder("saved");
  save_causal_lm(saved, *loaded.lm);
  CHECK_FALSE(load_checkpoint(saved).config.contains("quantization_config"));
  CHECK(torch::equal(load_causal_lm(saved)->named_parameters()["model.layers.0.self_attn.q_proj.weight"],
                     params["model.layers.0.self_attn.q_proj.weight"]));

  tensors.erase("model.layers.2.mlp.experts.4.down_proj.weight_global_scale");
  save_checkpoint(dir, config, tensors);
  CHECK(error_text([&] { load_model_folder(dir); }) ==
        dir.string() + ": packed weights: model.layers.2.mlp.experts.4.down_proj.weight_global_scale is missing");
}
