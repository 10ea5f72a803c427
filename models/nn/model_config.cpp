// Parses config.json into ModelConfig. Facts (defaults, which bias flag each
// architecture reads, where rope_theta lives) are those of the transformers
// 5.23 config classes; newer configs keep rope_theta under "rope_parameters",
// older ones at top level with an optional "rope_scaling".
#include "models/nn/model_config.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>

#include "common/error.hpp"

namespace qerl::models {
namespace {

using nlohmann::json;

// Sanity limits of the size keys: far above every released model, low enough
// that an absurd value (a typo, 1e12) is named here instead of failing in the
// allocator, and that products of sizes stay far from int64 overflow.
constexpr int64_t max_vocab_size = int64_t{1} << 24;     // 16.7M tokens; released vocabularies are < 1M
constexpr int64_t max_width = int64_t{1} << 20;          // hidden, intermediate and head widths
constexpr int64_t max_layers = int64_t{1} << 14;         // decoder layers (and decoder_sparse_step)
constexpr int64_t max_heads = int64_t{1} << 14;          // attention and key/value heads
constexpr int64_t max_positions = int64_t{1} << 30;      // max_position_embeddings, sliding_window
constexpr int64_t max_experts = 32767;                   // routing indices are int16

[[noreturn]] void fail(const std::string& what) {
  throw Error("config.json: " + what);
}

bool present(const json& config, const char* key) {
  return config.contains(key) && !config.at(key).is_null();
}

// "\"key\" = <value as written>: " — the start of every message about a key's value.
std::string key_is(const char* key, const json& value) {
  return std::string("\"") + key + "\" = " + value.dump() + ": ";
}

int64_t get_int(const json& config, const char* key) {
  if (!present(config, key)) fail(std::string("missing integer \"") + key + "\"");
  const json& value = config.at(key);
  if (!value.is_number_integer()) fail(key_is(key, value) + "expected an integer");
  // A uint64 above INT64_MAX would wrap negative in get<int64_t>().
  if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    fail(key_is(key, value) + "expected an integer that fits int64");
  return value.get<int64_t>();
}

int64_t get_int(const json& config, const char* key, int64_t fallback) {
  return present(config, key) ? get_int(config, key) : fallback;
}

// `value` of `key` in [min, max], min 0 or 1 ("non-negative" / "positive").
int64_t require_range(const char* key, int64_t value, int64_t min, int64_t max) {
  if (value < min)
    fail(key_is(key, json(value)) + "expected a " + (min > 0 ? "positive" : "non-negative") + " integer");
  if (value > max) fail(key_is(key, json(value)) + "exceeds qerl's sanity limit " + std::to_string(max));
  return value;
}

// A required size key, checked against [min, max].
int64_t get_size(const json& config, const char* key, int64_t max, int64_t min = 1) {
  return require_range(key, get_int(config, key), min, max);
}

// An optional size key: `fallback` (not checked) when absent.
int64_t get_size(const json& config, const char* key, int64_t fallback, int64_t max, int64_t min) {
  return present(config, key) ? get_size(config, key, max, min) : fallback;
}

double get_double(const json& config, const char* key, double fallback) {
  if (!present(config, key)) return fallback;
  const json& value = config.at(key);
  if (!value.is_number()) fail(key_is(key, value) + "expected a number");
  return value.get<double>();
}

// A finite number > 0 (`positive`) or >= 0.
double get_positive_double(const json& config, const char* key, double fallback, bool positive = true) {
  const double value = get_double(config, key, fallback);
  if (!std::isfinite(value) || value < 0 || (positive && value == 0))
    fail(key_is(key, present(config, key) ? config.at(key) : json(value)) + "expected a finite " +
         (positive ? "positive" : "non-negative") + " number");
  return value;
}

bool get_bool(const json& config, const char* key, bool fallback) {
  if (!present(config, key)) return fallback;
  const json& value = config.at(key);
  if (!value.is_boolean()) fail(key_is(key, value) + "expected true or false");
  return value.get<bool>();
}

std::optional<int64_t> get_optional_int(const json& config, const char* key) {
  if (!present(config, key)) return std::nullopt;
  return get_int(config, key);
}

Architecture parse_architecture(const std::string& model_type) {
  if (model_type == "qwen2_moe") return Architecture::qwen2_moe;
  if (model_type == "qwen3_moe") return Architecture::qwen3_moe;
  if (model_type == "mixtral") return Architecture::mixtral;
  if (model_type == "qwen2") return Architecture::qwen2;
  if (model_type == "qwen3") return Architecture::qwen3;
  if (model_type == "llama") return Architecture::llama;
  fail("unsupported model_type \"" + model_type + "\" (supported: qwen2_moe, qwen3_moe, mixtral, qwen2, qwen3, llama)");
}

// rope_theta from "rope_parameters" (5.x), "rope_scaling" or the top level;
// only the plain ("default") RoPE is implemented.
double parse_rope_theta(const json& config, double default_theta) {
  json rope = json::object();
  if (present(config, "rope_scaling"))
    rope = config.at("rope_scaling");
  else if (present(config, "rope_parameters"))
    rope = config.at("rope_parameters");
  if (!rope.is_object()) fail("\"rope_parameters\" must be an object");
  std::string type = "default";
  if (present(rope, "rope_type"))
    type = rope.at("rope_type").get<std::string>();
  else if (present(rope, "type"))
    type = rope.at("type").get<std::string>();
  if (type != "default") fail("rope_type \"" + type + "\" is not supported (only \"default\")");
  if (get_double(rope, "partial_rotary_factor", 1.0) != 1.0) fail("partial_rotary_factor != 1 is not supported");
  return present(rope, "rope_theta") ? get_positive_double(rope, "rope_theta", default_theta)
                                     : get_positive_double(config, "rope_theta", default_theta);
}

std::vector<int64_t> parse_eos(const json& config) {
  if (!present(config, "eos_token_id")) return {};
  const json& value = config.at("eos_token_id");
  if (value.is_number_integer()) return {value.get<int64_t>()};
  if (!value.is_array()) fail("\"eos_token_id\" must be an integer or a list of integers");
  std::vector<int64_t> ids;
  for (const json& id : value) {
    if (!id.is_number_integer()) fail("\"eos_token_id\" must be an integer or a list of integers");
    ids.push_back(id.get<int64_t>());
  }
  return ids;
}

void parse_moe(const json& config, ModelConfig& out) {
  const bool mixtral = out.architecture == Architecture::mixtral;
  // Mixtral and (5.x) qwen3_moe store "num_local_experts" and accept
  // "num_experts" as an alias; qwen2_moe knows only "num_experts".
  const bool qwen2 = out.architecture == Architecture::qwen2_moe;
  const int64_t default_experts = mixtral ? 8 : (qwen2 ? 60 : 128);
  const char* experts_key = !qwen2 && present(config, "num_local_experts") ? "num_local_experts" : "num_experts";
  out.num_experts = get_size(config, experts_key, default_experts, max_experts, /*min=*/1);
  out.num_experts_per_tok =
      get_size(config, "num_experts_per_tok", mixtral ? 2 : (qwen2 ? 4 : 8), max_experts, /*min=*/1);
  if (out.num_experts_per_tok > out.num_experts)
    fail(key_is("num_experts_per_tok", json(out.num_experts_per_tok)) + "exceeds " + experts_key + " " +
         std::to_string(out.num_experts) + (present(config, experts_key) ? "" : " (its default)"));
  out.moe_intermediate_size = mixtral ? out.intermediate_size : get_size(config, "moe_intermediate_size", max_width);
  out.norm_topk_prob = mixtral || get_bool(config, "norm_topk_prob", false);
  out.float32_mixing_weights = mixtral;
  if (!mixtral) {
    out.decoder_sparse_step = get_size(config, "decoder_sparse_step", 1, max_layers, /*min=*/1);
    if (present(config, "mlp_only_layers")) {
      const json& layers = config.at("mlp_only_layers");
      if (!layers.is_array()) fail(key_is("mlp_only_layers", layers) + "expected a list of layer indices");
      for (const json& layer : layers) {
        if (!layer.is_number_integer() || layer.get<int64_t>() < 0 || layer.get<int64_t>() >= out.num_hidden_layers)
          fail(key_is("mlp_only_layers", layers) + "expected layer indices in [0, num_hidden_layers " +
               std::to_string(out.num_hidden_layers) + ")");
        out.mlp_only_layers.push_back(layer.get<int64_t>());
      }
    }
  }
  // qwen2_moe's shared expert; 0 means none.
  if (out.architecture == Architecture::qwen2_moe)
    out.shared_expert_intermediate_size = get_size(config, "shared_expert_intermediate_size", max_width, /*min=*/0);
}

}  // namespace

bool ModelConfig::is_moe_layer(int64_t layer) const {
  if (num_experts <= 0) return false;
  if (architecture == Architecture::mixtral) return true;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
  return (layer + 1) % decoder_sparse_step == 0;
}

int64_t ModelConfig::num_moe_layers() const {
  int64_t count = 0;
  for (int64_t layer = 0; layer < num_hidden_layers; ++layer) count += is_moe_layer(layer) ? 1 : 0;
  return count;
}

std::string ModelConfig::mlp_module_name() const {
  return architecture == Architecture::mixtral ? "block_sparse_moe" : "mlp";
}

const char* architecture_name(Architecture architecture) {
  switch (architecture) {
    case Architecture::qwen2_moe:
      return "qwen2_moe";
    case Architecture::qwen3_moe:
      return "qwen3_moe";
    case Architecture::mixtral:
      return "mixtral";
    case Architecture::qwen2:
      return "qwen2";
    case Architecture::qwen3:
      return "qwen3";
    case Architecture::llama:
      return "llama";
  }
  return "?";
}

c10::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "float") return c10::ScalarType::Float;
  if (name == "bfloat16" || name == "bf16") return c10::ScalarType::BFloat16;
  if (name == "float16" || name == "fp16" || name == "half") return c10::ScalarType::Half;
  throw Error("unsupported dtype \"" + name + "\" (float32, bfloat16, float16)");
}

std::string dtype_name(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::ScalarType::Float:
      return "float32";
    case c10::ScalarType::BFloat16:
      return "bfloat16";
    case c10::ScalarType::Half:
      return "float16";
    default:
      return c10::toString(dtype);
  }
}

namespace {

ModelConfig parse_fields(const json& config) {
  if (!config.is_object()) fail("top level must be an object");
  if (!present(config, "model_type") || !config.at("model_type").is_string()) fail("missing string \"model_type\"");
  ModelConfig out;
  out.model_type = config.at("model_type").get<std::string>();
  out.architecture = parse_architecture(out.model_type);
  const Architecture arch = out.architecture;

  // Every size is checked before anything is built from it (CausalLM's
  // constructor then checks the total against the memory available).
  out.vocab_size = get_size(config, "vocab_size", max_vocab_size);
  out.hidden_size = get_size(config, "hidden_size", max_width);
  out.intermediate_size = get_size(config, "intermediate_size", max_width);
  out.num_hidden_layers = get_size(config, "num_hidden_layers", max_layers);
  out.num_attention_heads = get_size(config, "num_attention_heads", max_heads);
  out.num_key_value_heads = get_size(config, "num_key_value_heads", out.num_attention_heads, max_heads, /*min=*/1);
  if (out.num_attention_heads % out.num_key_value_heads != 0)
    fail(key_is("num_key_value_heads", json(out.num_key_value_heads)) +
         "expected a divisor of \"num_attention_heads\" = " + std::to_string(out.num_attention_heads));
  const std::string no_head_dim = " (and config.json has no \"head_dim\")";
  if (present(config, "head_dim")) {
    out.head_dim = get_size(config, "head_dim", max_width);
    if (out.head_dim % 2 != 0)
      fail(key_is("head_dim", config.at("head_dim")) + "expected an even integer (rotary embeddings rotate pairs)");
  } else if (arch == Architecture::qwen3) {
    out.head_dim = 128;  // Qwen3Config's default
  } else {  // the others derive it
    if (out.hidden_size % out.num_attention_heads != 0)
      fail("hidden_size " + std::to_string(out.hidden_size) + " is not divisible by num_attention_heads " +
           std::to_string(out.num_attention_heads) + no_head_dim);
    out.head_dim = out.hidden_size / out.num_attention_heads;
    if (out.head_dim % 2 != 0)
      fail("hidden_size " + std::to_string(out.hidden_size) + " / num_attention_heads " +
           std::to_string(out.num_attention_heads) + " = " + std::to_string(out.head_dim) +
           " is odd, rotary embeddings need an even head dimension" + no_head_dim);
  }
  out.rms_norm_eps = get_positive_double(config, "rms_norm_eps", arch == Architecture::mixtral ? 1e-5 : 1e-6);
  out.rope_theta = parse_rope_theta(config, arch == Architecture::mixtral ? 1e6 : 10000.0);
  out.initializer_range = get_positive_double(config, "initializer_range", 0.02, /*positive=*/false);
  // 0: the config sets no limit.
  out.max_position_embeddings = get_size(config, "max_position_embeddings", 0, max_positions, /*min=*/1);
  out.tie_word_embeddings = get_bool(config, "tie_word_embeddings", false);

  if (present(config, "hidden_act") && config.at("hidden_act") != "silu")
    fail("hidden_act \"" + config.at("hidden_act").dump() + "\" is not supported (only silu)");
  switch (arch) {
    case Architecture::qwen2:
      out.qkv_bias = true;
      break;
    case Architecture::qwen2_moe:
      out.qkv_bias = get_bool(config, "qkv_bias", true);
      break;
    case Architecture::qwen3:
    case Architecture::qwen3_moe:
    case Architecture::llama:
      out.qkv_bias = out.o_bias = get_bool(config, "attention_bias", false);
      break;
    case Architecture::mixtral:
      break;
  }
  if (arch == Architecture::llama) out.mlp_bias = get_bool(config, "mlp_bias", false);
  if (arch == Architecture::llama && get_int(config, "pretraining_tp", 1) != 1)
    fail("pretraining_tp != 1 is not supported");
  out.qk_norm = arch == Architecture::qwen3 || arch == Architecture::qwen3_moe;

  if (arch == Architecture::mixtral) {
    if (present(config, "sliding_window")) out.sliding_window = get_size(config, "sliding_window", max_positions);
  } else if (get_bool(config, "use_sliding_window", false)) {
    fail("use_sliding_window is not supported");
  }
  if (present(config, "layer_types")) {
    for (const json& type : config.at("layer_types"))
      if (type != "full_attention") fail("layer_types other than full_attention are not supported");
  }

  if (arch == Architecture::qwen2_moe || arch == Architecture::qwen3_moe || arch == Architecture::mixtral)
    parse_moe(config, out);

  std::string dtype = "float32";
  if (present(config, "dtype"))
    dtype = config.at("dtype").get<std::string>();
  else if (present(config, "torch_dtype"))
    dtype = config.at("torch_dtype").get<std::string>();
  out.dtype = parse_dtype(dtype);
  out.bos_token_id = get_optional_int(config, "bos_token_id");
  out.pad_token_id = get_optional_int(config, "pad_token_id");
  out.eos_token_ids = parse_eos(config);
  out.raw = config;
  return out;
}

}  // namespace

ModelConfig parse_model_config(const json& config) {
  try {
    return parse_fields(config);
  } catch (const json::exception& e) {
    fail(std::string("ill-typed field: ") + e.what());
  }
}

ModelConfig load_model_config(const std::string& config_json_path) {
  std::ifstream in(config_json_path);
  if (!in) throw Error(config_json_path + ": cannot open");
  json config;
  try {
    in >> config;
  } catch (const json::exception& e) {
    throw Error(config_json_path + ": bad JSON: " + e.what());
  }
  try {
    return parse_model_config(config);
  } catch (const Error& e) {
    const std::string what = e.what();
    const std::string generic = "config.json: ";
    throw Error(config_json_path + ": " + (what.rfind(generic, 0) == 0 ? what.substr(generic.size()) : what));
  }
}

std::vector<int64_t> generation_eos_token_ids(const std::string& dir, const ModelConfig& config) {
  std::vector<int64_t> ids = config.eos_token_ids;
  std::ifstream in(dir + "/generation_config.json");
  if (!in) return ids;
  const auto generation = nlohmann::json::parse(in, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (!generation.is_object() || !generation.contains("eos_token_id")) return ids;
  const auto& eos = generation.at("eos_token_id");
  for (const auto& id : eos.is_array() ? eos : nlohmann::json::array({eos}))
    if (id.is_number_integer() && std::find(ids.begin(), ids.end(), id.get<int64_t>()) == ids.end())
      ids.push_back(id.get<int64_t>());
  return ids;
}

}  // namespace qerl::models
