// compressed-tensors folders (see compressed_tensors.hpp): the checks on
// quantization_config follow compressed-tensors 0.20.1's QuantizationConfig
// and presets (NVFP4A16, NVFP4, MXFP4A16, MXFP4); the packed tensors are
// split off the checkpoint and dequantized with the kernels/ reference,
// which is bit-exact with compressed-tensors' decompress.
#include "models/quant/compressed_tensors.hpp"

#include <set>

#include "common/error.hpp"
#include "models/quant/quantize_model.hpp"

namespace qerl::models {
namespace {

using nlohmann::json;

std::string text_of(const json& value) { return value.dump(); }

// `args` (a QuantizationArgs object at `key`) must be 4-bit float, symmetric,
// with `group_size` and `strategy`.
void check_args(const json& args, const std::string& key, int64_t group_size, const std::string& strategy) {
  if (!args.is_object()) throw Error(key + ": expected an object, got " + text_of(args));
  const auto expect = [&](const char* field, const json& wanted) {
    if (!args.contains(field) || args[field] != wanted)
      throw Error(key + "." + field + ": expected " + text_of(wanted) + " (" + std::to_string(group_size) +
                  "-element FP4 groups), got " + (args.contains(field) ? text_of(args[field]) : "nothing"));
  };
  expect("num_bits", 4);
  expect("type", "float");
  expect("group_size", group_size);
  expect("strategy", strategy);
  if (args.contains("symmetric") && args["symmetric"] != true) throw Error(key + ".symmetric: expected true");
}

}  // namespace

std::optional<CompressedTensorsConfig> read_compressed_tensors_config(const json& config, const std::string& where) {
  if (!config.is_object() || !config.contains("quantization_config")) return std::nullopt;
  const std::string base = where + ": quantization_config";
  const json& q = config["quantization_config"];
  if (!q.is_object()) throw Error(base + ": expected an object");
  if (q.value("quant_method", std::string()) != "compressed-tensors")
    throw Error(base + ".quant_method: expected \"compressed-tensors\", got " +
                (q.contains("quant_method") ? text_of(q["quant_method"]) : "nothing"));
  const std::string status = q.value("quantization_status", std::string("compressed"));
  if (status != "compressed")
    throw Error(base + ".quantization_status: expected \"compressed\" (packed weights), got \"" + status + "\"");
  if (q.contains("sparsity_config") && !q["sparsity_config"].is_null() && !q["sparsity_config"].empty())
    throw Error(base + ".sparsity_config: sparse checkpoints are not supported");
  if (q.contains("kv_cache_scheme") && !q["kv_cache_scheme"].is_null())
    throw Error(base + ".kv_cache_scheme: a quantized KV cache is not supported");
  if (!q.contains("config_groups") || !q["config_groups"].is_object() || q["config_groups"].size() != 1)
    throw Error(base + ".config_groups: expected exactly one group (one scheme for every quantized Linear)");

  const auto& [group_name, group] = *q["config_groups"].items().begin();
  const std::string key = base + ".config_groups." + group_name;
  if (!group.is_object()) throw Error(key + ": expected an object");
  if (!group.contains("targets") || group["targets"] != json::array({"Linear"}))
    throw Error(key + ".targets: expected [\"Linear\"], got " +
                (group.contains("targets") ? text_of(group["targets"]) : "nothing"));
  CompressedTensorsConfig out;
  out.format = group.contains("format") && group["format"].is_string() ? group["format"].get<std::string>()
                                                                         : q.value("format", std::string());
  const bool nvfp4 = out.format == "nvfp4-pack-quantized";
  if (!nvfp4 && out.format != "mxfp4-pack-quantized")
    throw Error(base + ".format: expected \"nvfp4-pack-quantized\" or \"mxfp4-pack-quantized\", got \"" + out.format +
                "\"");
  out.spec.scheme = nvfp4 ? QuantScheme::nvfp4 : QuantScheme::mxfp4;
  if (!group.contains("weights")) throw Error(key + ".weights: missing");
  check_args(group["weights"], key + ".weights", nvfp4 ? 16 : 32, nvfp4 ? "tensor_group" : "group");
  if (group.contains("input_activations") && !group["input_activations"].is_null()) {
    check_args(group["input_activations"], key + ".input_activations", nvfp4 ? 16 : 32,
               nvfp4 ? "tensor_group" : "group");
    out.spec.quantize_inputs = true;
  }
  if (group.contains("output_activations") && !group["output_activations"].is_null())
    throw Error(key + ".output_activations: quantized outputs are not supported");
  out.spec.ignore.clear();
  if (q.contains("ignore")) {
    if (!q["ignore"].is_array()) throw Error(base + ".ignore: expected a list of module names");
    for (const auto& name : q["ignore"]) {
      if (!name.is_string()) throw Error(base + ".ignore: expected strings, got " + text_of(name));
      out.spec.ignore.push_back(name.get<std::string>());
    }
  }
  return out;
}

LoadedModel load_model_folder(const std::filesystem::path& dir, const LoadOptions& options) {
  const auto config_file = dir / "config.json";
  // The config first: an unsupported model or scheme fails before any weights are mapped.
  ModelConfig config = load_model_config(config_file.string());
  LoadedModel out;
  out.quantization = read_compressed_tensors_config(config.raw, config_file.string());
  if (!out.quantization) {
    out.lm = load_causal_lm(dir, options);
    return out;
  }
  Checkpoint checkpoint = load_checkpoint(dir);
  const auto dtype = options.dtype.value_or(config.dtype);
  TensorMap dense;
  try {
    for (auto& [name, tensor] : to_qerl_layout(checkpoint.tensors, config))
      (is_packed_tensor_name(name) ? out.packed : dense)[name] = tensor;
    if (out.packed.empty()) throw Error("quantization_config is set, but no tensor is packed (no *.weight_packed)");
    out.lm = CausalLM(config);
    out.lm->to(options.device, dtype);
    // The packed Linears' dense weights: placeholders the codes overwrite below.
    std::set<std::string> packed_modules;
    for (const auto& [name, tensor] : out.packed)
      if (const std::string module = packed_module_name(name); !module.empty()) packed_modules.insert(module);
    for (auto& item : out.lm->named_parameters(/*recurse=*/true)) {
      const std::string& name = item.key();
      const auto dot = name.rfind('.');
      if (dot != std::string::npos && name.substr(dot) == ".weight" && packed_modules.count(name.substr(0, dot))) {
        if (dense.count(name)) throw Error("tensor " + name + " is stored both dense and packed");
        dense[name] = item.value().detach();
      }
    }
    load_weights(*out.lm, dense);
    const PackedBase codes(*out.lm, out.quantization->spec, out.packed);  // writes the dequantized weights
  } catch (const Error& e) {
    throw Error(dir.string() + ": " + e.what());
  }
  out.lm->eval();
  return out;
}

}  // namespace qerl::models
