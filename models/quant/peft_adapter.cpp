// PEFT adapter folders (see peft_adapter.hpp): PEFT's LoraConfig fields
// as PEFT 0.21 writes them, the key renaming, and the checks that make a
// folder qerl cannot apply exactly fail with one line naming file and key.
#include "models/quant/peft_adapter.hpp"

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>
#include <set>
#include <system_error>
#include <vector>

#include "common/atomic_file.hpp"
#include "common/error.hpp"
#include "models/io/safetensors.hpp"
#include "models/nn/non_finite.hpp"

namespace qerl::models {
namespace {
namespace peft_files {  // a named scope: qerl_quant is one unity translation unit

using nlohmann::json;

constexpr const char* config_file = "adapter_config.json";
constexpr const char* weights_file = "adapter_model.safetensors";
constexpr const char* key_prefix = "base_model.model.";  // PeftModel's prefix, as saved
constexpr const char* suffix_a = ".lora_A.weight";
constexpr const char* suffix_b = ".lora_B.weight";

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shape_text(const torch::Tensor& t) { return c10::str(t.sizes()); }

// Every name is "<module>.lora_A.weight" or ".lora_B.weight", every module
// has both, A is [rank, in] and B [out, rank]. `where` names the source.
void check_pairs(const std::map<std::string, torch::Tensor>& tensors, int64_t rank, const std::string& where,
                 const std::string& rank_source) {
  if (tensors.empty()) throw Error(where + ": no LoRA tensors");
  for (const auto& [name, t] : tensors) {
    const bool is_a = has_suffix(name, suffix_a), is_b = has_suffix(name, suffix_b);
    if (!is_a && !is_b) throw Error(where + ": tensor " + name + ": expected <module>.lora_A.weight or .lora_B.weight");
    const std::string module = name.substr(0, name.size() - std::string(suffix_a).size());
    const std::string other = module + (is_a ? suffix_b : suffix_a);
    if (tensors.count(other) == 0) throw Error(where + ": " + name + " has no " + other);
    if (t.dim() != 2 || t.size(is_a ? 0 : 1) != rank)
      throw Error(where + ": " + name + " has shape " + shape_text(t) + ", expected " +
                  (is_a ? "[r, in]" : "[out, r]") + " with r = " + std::to_string(rank) + rank_source);
  }
}

// Whether a regex ends in an unescaped `$` (then re.match = re.fullmatch).
bool ends_anchored(const std::string& regex) {
  if (regex.empty() || regex.back() != '$') return false;
  size_t slashes = 0;
  for (size_t i = regex.size() - 1; i > 0 && regex[i - 1] == '\\'; --i) ++slashes;
  return slashes % 2 == 0;
}

std::string escape_regex(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (std::string(".^$*+?()[]{}|\\").find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

bool has_backreference(const std::string& regex) {
  for (size_t i = 0; i + 1 < regex.size(); ++i) {
    if (regex[i] != '\\') continue;
    if (regex[i + 1] >= '1' && regex[i + 1] <= '9') return true;
    ++i;  // an escaped character
  }
  return false;
}

// True for a value that turns a PEFT option on (true, a non-zero number,
// a non-empty string, list or object).
bool is_set(const json& value) {
  if (value.is_null()) return false;
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_number()) return value.get<double>() != 0;
  if (value.is_string() || value.is_array() || value.is_object()) return !value.empty();
  return true;
}

// PEFT options that change what the adapter computes or which modules it
// covers beyond what qerl's LoraConfig and W + (alpha / r) B A express.
struct Variant {
  const char* key;
  const char* what;
};
constexpr Variant unsupported_variants[] = {
    {"use_dora", "DoRA (weight-decomposed LoRA)"},
    {"use_rslora", "rank-stabilized LoRA (scale alpha / sqrt(r))"},
    {"fan_in_fan_out", "transposed (Conv1D) base weights"},
    {"lora_bias", "a bias on lora_B"},
    {"use_qalora", "QA-LoRA"},
    {"use_bdlora", "block-diagonal LoRA"},
    {"alora_invocation_tokens", "activated LoRA"},
    {"rank_pattern", "per-module ranks"},
    {"alpha_pattern", "per-module alphas"},
    {"target_parameters",
     "LoRA on parameters (e.g. fused MoE experts, as PEFT saves them for transformers 5; qerl reads per-expert "
     "Linear adapters)"},
    {"modules_to_save", "fully trained modules"},
    {"trainable_token_indices", "trained token embeddings"},
    {"layer_replication", "layer replication"},
    {"exclude_modules", "excluded modules"},
    {"layers_to_transform", "a subset of layers"},
    {"arrow_config", "Arrow routing"},
    {"kasa_config", "KaSA"},
    {"monteclora_config", "MonteCLoRA"},
    {"velora_config", "VeLoRA"},
};

json parse_config(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    throw Error(file.string() + ": no such file (a PEFT adapter folder holds " + config_file + " and " +
                weights_file + ")");
  const std::string text = [&] {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }();
  json config = json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) throw Error(file.string() + ": bad JSON");
  if (!config.is_object()) throw Error(file.string() + ": expected a JSON object");
  return config;
}

const json& required(const json& config, const char* key, const std::string& file) {
  if (!config.contains(key) || config[key].is_null()) throw Error(file + ": \"" + key + "\" is missing");
  return config[key];
}

// PEFT's string target_modules (re.fullmatch) as one qerl "re:" pattern.
std::string qerl_pattern_of(const std::string& regex, const std::string& file) {
  const std::string pattern = ends_anchored(regex) ? regex : "(?:" + regex + ")$";
  try {
    std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw Error(file + ": \"target_modules\": regex \"" + regex + "\" is not one qerl understands (ECMAScript): " +
                e.what());
  }
  return "re:" + pattern;
}

std::vector<std::string> read_targets(const json& value, const std::map<std::string, torch::Tensor>& tensors,
                                      const std::string& file) {
  if (value.is_array()) {
    std::vector<std::string> out;
    for (const auto& entry : value) {
      if (!entry.is_string()) throw Error(file + ": \"target_modules\": expected a list of names or one regex");
      out.push_back(entry.get<std::string>());
    }
    if (out.empty()) throw Error(file + ": \"target_modules\" is empty");
    return out;
  }
  if (!value.is_string()) throw Error(file + ": \"target_modules\": expected a list of names or one regex");
  const std::string text = value.get<std::string>();
  if (text != "all-linear") return {qerl_pattern_of(text, file)};
  // PEFT's shorthand: every Linear but the output layer; the tensors say which.
  std::set<std::string> leaves;
  for (const auto& [name, t] : tensors) {
    const std::string module = name.substr(0, name.size() - std::string(suffix_a).size());
    leaves.insert(module.substr(module.rfind('.') + 1));
  }
  return {leaves.begin(), leaves.end()};
}

// Every module with tensors is one target_modules selects: PEFT builds
// LoRA layers for those only, so it would leave the others' tensors unused.
void check_targeted(const PeftAdapter& adapter, const json& targets, const std::string& file) {
  LoraTargets matcher(adapter.config.target_modules, file + ": \"target_modules\"");
  std::vector<std::string> strays;
  for (const auto& [name, t] : adapter.tensors)
    if (has_suffix(name, suffix_a)) {
      const std::string module = name.substr(0, name.size() - std::string(suffix_a).size());
      if (!matcher.selects(module)) strays.push_back(module);
    }
  if (strays.empty()) return;
  constexpr size_t shown = 3;
  std::string names;
  for (size_t i = 0; i < std::min(shown, strays.size()); ++i) names += (i ? ", " : "") + strays[i];
  if (strays.size() > shown) names += " and " + std::to_string(strays.size() - shown) + " more";
  throw Error(file + ": \"target_modules\" is " + targets.dump() + ", which does not select module" +
              (strays.size() > 1 ? "s " : " ") + names + " of " + weights_file +
              " (PEFT would not load " + (strays.size() > 1 ? "their" : "its") + " lora_A / lora_B)");
}

// "base_model.model.<module>.lora_X.weight" -> "<module>.lora_X.weight".
std::string qerl_name_of(const std::string& key, const std::string& file) {
  const std::string form = "base_model.model.<module>.lora_A.weight or .lora_B.weight";
  if (key.rfind(key_prefix, 0) != 0) throw Error(file + ": tensor " + key + ": expected " + form);
  const std::string name = key.substr(std::string(key_prefix).size());
  if ((has_suffix(name, suffix_a) || has_suffix(name, suffix_b)) && name.size() > std::string(suffix_a).size())
    return name;
  static const std::regex named(R"(.*\.lora_[AB]\.([^.]+)\.weight)");
  std::smatch m;
  if (std::regex_match(name, m, named))
    throw Error(file + ": tensor " + key + " carries the adapter name \"" + m[1].str() +
                "\" (PeftModel.state_dict form); expected save_pretrained's form " + form);
  throw Error(file + ": tensor " + key + ": expected " + form);
}

}  // namespace peft_files
}  // namespace

nlohmann::json peft_target_modules(const std::vector<std::string>& target_modules) {
  using namespace peft_files;
  if (target_modules.empty()) throw Error("lora.target_modules is empty");
  bool any_regex = false;
  for (const auto& t : target_modules) any_regex = any_regex || t.rfind("re:", 0) == 0;
  if (!any_regex) return target_modules;
  // One regex for re.fullmatch: a leaf name matches "<name>" or "*.<name>";
  // qerl's "re:R" (anchored at the start only) matches R followed by anything.
  std::vector<std::string> alternatives;
  for (const auto& t : target_modules) {
    if (t.rfind("re:", 0) != 0) {
      alternatives.push_back("(?:.*\\.)?" + escape_regex(t));
      continue;
    }
    const std::string regex = t.substr(3);
    if (target_modules.size() > 1 && has_backreference(regex))
      throw Error("lora.target_modules: \"" + t +
                  "\" has a back-reference; PEFT takes one regex, and joining it with the other entries would "
                  "renumber its groups (give it alone, or write it without)");
    alternatives.push_back(ends_anchored(regex) ? regex : "(?:" + regex + ").*");
  }
  if (alternatives.size() == 1) return alternatives.front();
  std::string joined;
  for (const auto& a : alternatives) joined += (joined.empty() ? "" : "|") + ("(?:" + a + ")");
  return joined;
}

void write_peft_adapter(const std::filesystem::path& dir, const LoraConfig& config,
                        const std::map<std::string, torch::Tensor>& tensors, const std::string& base_model) {
  using namespace peft_files;
  if (config.rank < 1) throw Error("lora.rank must be at least 1, got " + std::to_string(config.rank));
  check_pairs(tensors, config.rank, "LoRA tensors for " + dir.string(), " (lora.rank)");
  const double alpha = config.alpha;
  const json lora_alpha = alpha == static_cast<double>(static_cast<int64_t>(alpha)) ? json(static_cast<int64_t>(alpha))
                                                                                     : json(alpha);
  // PEFT's LoraConfig fields for plain LoRA; PEFT fills the rest with its defaults.
  const json adapter_config = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"r", config.rank},
      {"lora_alpha", lora_alpha},
      {"lora_dropout", config.dropout},
      {"target_modules", peft_target_modules(config.target_modules)},
      {"bias", "none"},
      {"base_model_name_or_path", base_model.empty() ? json(nullptr) : json(base_model)},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"use_rslora", false},
      {"use_dora", false},
      {"fan_in_fan_out", false},
      {"lora_bias", false},
      {"modules_to_save", nullptr},
      {"rank_pattern", json::object()},
      {"alpha_pattern", json::object()},
      {"layers_to_transform", nullptr},
      {"layers_pattern", nullptr},
      {"exclude_modules", nullptr},
      {"revision", nullptr},
  };
  TensorMap stored;
  for (const auto& [name, t] : tensors) stored[key_prefix + name] = t.detach();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir.string() + ": cannot create: " + ec.message());
  write_safetensors(dir / weights_file, stored, {{"format", "pt"}});
  write_file_atomically(dir / config_file, adapter_config.dump(2) + "\n");
}

PeftAdapter read_peft_adapter(const std::filesystem::path& dir) {
  using namespace peft_files;
  const std::filesystem::path config_path = dir / config_file, weights_path = dir / weights_file;
  const std::string file = config_path.string();
  const json config = parse_config(config_path);
  try {
    const json& type = required(config, "peft_type", file);
    if (!type.is_string() || type.get<std::string>() != "LORA")
      throw Error(file + ": \"peft_type\" is " + type.dump() + ", expected \"LORA\"");
    for (const auto& v : unsupported_variants)
      if (config.contains(v.key) && is_set(config[v.key]))
        throw Error(file + ": \"" + v.key + "\" is " + config[v.key].dump() + ": " + v.what +
                    " is not supported (qerl reads plain LoRA: W + (lora_alpha / r) B A)");
    if (config.contains("bias") && !config["bias"].is_null() && config["bias"] != "none")
      throw Error(file + ": \"bias\" is " + config["bias"].dump() + ", expected \"none\"");

    PeftAdapter adapter;
    const json& r = required(config, "r", file);
    if (!r.is_number_integer() || r.get<int64_t>() < 1)
      throw Error(file + ": \"r\" is " + r.dump() + ", expected a positive integer");
    adapter.config.rank = r.get<int64_t>();
    const json& alpha = required(config, "lora_alpha", file);
    if (!alpha.is_number()) throw Error(file + ": \"lora_alpha\" is " + alpha.dump() + ", expected a number");
    adapter.config.alpha = alpha.get<double>();
    if (config.contains("lora_dropout") && !config["lora_dropout"].is_null()) {
      if (!config["lora_dropout"].is_number())
        throw Error(file + ": \"lora_dropout\" is " + config["lora_dropout"].dump() + ", expected a number");
      adapter.config.dropout = config["lora_dropout"].get<double>();
    }
    if (config.contains("base_model_name_or_path") && config["base_model_name_or_path"].is_string())
      adapter.base_model = config["base_model_name_or_path"].get<std::string>();

    std::error_code ec;
    if (!std::filesystem::is_regular_file(weights_path, ec))
      throw Error(weights_path.string() + ": no such file (qerl reads PEFT's safetensors form only)");
    for (auto& [key, t] : read_safetensors(weights_path).tensors)
      adapter.tensors[qerl_name_of(key, weights_path.string())] = t;
    check_pairs(adapter.tensors, adapter.config.rank, weights_path.string(), std::string(" (") + config_file + ")");
    if (const auto finding = find_non_finite(adapter.tensors, key_prefix))
      throw Error(weights_path.string() + ": " + *finding);
    const json& targets = required(config, "target_modules", file);
    adapter.config.target_modules = read_targets(targets, adapter.tensors, file);
    check_targeted(adapter, targets, file);
    return adapter;
  } catch (const json::exception& e) {
    throw Error(file + ": " + e.what());
  }
}

}  // namespace qerl::models
