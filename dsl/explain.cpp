// `qerl-run --explain [key]` and docs/pipeline-reference.md, both generated
// from the Schema: per key its type, default, allowed values or range and
// meaning; per stage type its ports, keys and whether it needs a device.
#include "dsl/explain.hpp"

#include "common/error.hpp"
#include "dsl/detail/convert.hpp"
#include "dsl/suggest.hpp"

namespace qerl::dsl {

namespace {

const char* const plugins_doc =
    "Shared libraries that add stage types, loaded before the pipeline is validated; "
    "relative paths resolve against the file that names them.";
const char* const extends_doc =
    "Path of a base pipeline (relative to this file). This file's values override the base's; "
    "tables merge key by key, arrays replace. Bases may extend further; cycles are errors.";

// `inputs` is a table, which ValueKind does not describe.
std::string type_text(const KeySpec& key) {
  return key.name == "inputs" ? "table" : kind_name(key.kind);
}
std::string default_text(const KeySpec& key) {
  if (key.name == "inputs") return "{}";
  return key.default_value ? to_toml_literal(*key.default_value) : "required";
}
std::string allowed_text(const KeySpec& key) {
  if (!key.one_of.empty()) {
    std::string out = "one of";
    for (size_t i = 0; i < key.one_of.size(); ++i) out += (i ? ", '" : " '") + key.one_of[i] + "'";
    return out;
  }
  return detail::range_text(key);
}

std::string key_text(const std::string& path, const KeySpec& key) {
  const std::string def = default_text(key);
  std::string out = path + " (" + type_text(key) + (def == "required" ? ", " : ", default ") + def;
  if (std::string allowed = allowed_text(key); !allowed.empty()) out += "; " + allowed;
  return out + ")\n    " + key.doc + "\n";
}

std::string stage_type_text(const StageTypeSchema& type) {
  std::string out = "stage type '" + type.name + "': " + type.doc + "\n";
  out += type.needs_device ? "  holds a model: needs gpus = [...]\n" : "  runs on the host CPU unless given gpus\n";
  out += "  inputs:\n";
  for (const PortSpec& p : type.inputs)
    out += "    " + p.name + " (" + p.type + (p.optional ? ", optional" : "") + "): " + p.doc + "\n";
  if (type.inputs.empty()) out += "    (none)\n";
  out += "  outputs:\n";
  for (const PortSpec& p : type.outputs) out += "    " + p.name + " (" + p.type + "): " + p.doc + "\n";
  if (type.outputs.empty()) out += "    (none)\n";
  out += "  keys (besides uses, inputs, gpus, replicas, worker):\n";
  for (const KeySpec& k : type.keys) out += "  " + key_text(k.name, k);
  if (type.keys.empty()) out += "    (none)\n";
  return out;
}

std::string overview(const Schema& schema) {
  std::string out = "Sections (--explain <section> lists its keys):\n";
  for (const SectionSchema& s : schema.sections()) out += "  [" + s.name + "]  " + s.doc + "\n";
  out += "Top-level keys:\n  plugins  " + std::string(plugins_doc) + "\n  extends  " + extends_doc + "\n";
  out += "Stages: [stages.<name>] tables (--explain stages for the keys every stage takes).\n";
  out += "Stage types (--explain stages.<type>):\n";
  for (const StageTypeSchema& t : schema.stage_types()) out += "  " + t.name + "  " + t.doc + "\n";
  return out;
}

// The stage type `rest` names, or a key of one ("reward.gsm8k.max_len").
std::optional<std::string> explain_stage_part(const Schema& schema, const std::string& rest) {
  if (const StageTypeSchema* type = schema.find_stage_type(rest)) return stage_type_text(*type);
  for (size_t dot = rest.rfind('.'); dot != std::string::npos && dot > 0; dot = rest.rfind('.', dot - 1)) {
    const StageTypeSchema* type = schema.find_stage_type(rest.substr(0, dot));
    const KeySpec* key = type ? type->find_key(rest.substr(dot + 1)) : nullptr;
    if (key) return key_text("stages.<name>." + key->name + " (stage type '" + type->name + "')", *key);
  }
  return std::nullopt;
}

std::vector<std::string> all_names(const Schema& schema) {
  std::vector<std::string> out{"plugins", "extends", "stages"};
  for (const SectionSchema& s : schema.sections()) {
    out.push_back(s.name);
    for (const KeySpec& k : s.keys) out.push_back(s.name + "." + k.name);
  }
  for (const KeySpec& k : schema.common_stage_keys()) out.push_back("stages." + k.name);
  for (const StageTypeSchema& t : schema.stage_types()) {
    out.push_back(t.name);
    out.push_back("stages." + t.name);
    for (const KeySpec& k : t.keys) out.push_back("stages." + t.name + "." + k.name);
  }
  return out;
}

}  // namespace

std::string explain(const Schema& schema, const std::string& key) {
  if (key.empty()) return overview(schema);
  if (key == "plugins") return "plugins (list of strings, default [])\n    " + std::string(plugins_doc) + "\n";
  if (key == "extends") return "extends (string, optional)\n    " + std::string(extends_doc) + "\n";
  if (const SectionSchema* section = schema.find_section(key)) {
    std::string out = "[" + section->name + "]  " + section->doc + "\n";
    for (const KeySpec& k : section->keys) out += key_text(section->name + "." + k.name, k);
    return out;
  }
  const size_t dot = key.find('.');
  if (dot != std::string::npos) {
    const SectionSchema* section = schema.find_section(key.substr(0, dot));
    const KeySpec* k = section ? section->find_key(key.substr(dot + 1)) : nullptr;
    if (k) return key_text(key, *k);
  }
  if (key == "stages") {
    std::string out = "Keys every [stages.<name>] table accepts:\n";
    for (const KeySpec& k : schema.common_stage_keys()) out += key_text("stages.<name>." + k.name, k);
    return out;
  }
  if (key.rfind("stages.", 0) == 0) {
    const std::string rest = key.substr(7);
    if (auto text = explain_stage_part(schema, rest)) return *text;
    if (const KeySpec* k = schema.find_common_stage_key(rest)) return key_text("stages.<name>." + k->name, *k);
  }
  if (auto text = explain_stage_part(schema, key)) return *text;
  throw Error("--explain: unknown key '" + key + "'" + did_you_mean(key, all_names(schema)));
}

}  // namespace qerl::dsl
