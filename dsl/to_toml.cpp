// The resolved pipeline as TOML: every section key (defaults included) in
// schema order, then stages in declaration order with inputs in the syntax
// they are written in. Loading the output gives a spec whose to_toml is
// identical, which is what makes <out_dir>/resolved.toml a faithful record.
#include <algorithm>
#include <set>

#include "dsl/loader.hpp"

namespace qerl::dsl {

namespace {

std::string toml_key(const std::string& key) {
  const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  return bare ? key : to_toml_literal(Value(key));
}

std::string reference(const InputSpec& input) {
  const std::string ref = input.from_port.empty() ? input.from_stage : input.from_stage + "." + input.from_port;
  if (!input.staleness) return to_toml_literal(Value(ref));
  return "{ from = " + to_toml_literal(Value(ref)) + ", staleness = " + std::to_string(*input.staleness) + " }";
}

std::string inputs_line(const std::vector<InputSpec>& inputs) {
  std::string out = "inputs = {";
  for (size_t i = 0; i < inputs.size(); ++i)
    out += (i ? ", " : " ") + toml_key(inputs[i].port) + " = " + reference(inputs[i]);
  return out + (inputs.empty() ? "}" : " }");
}

void write_stage(const StageSpec& stage, const Schema& schema, std::string& out) {
  out += "\n[stages." + toml_key(stage.name) + "]\n";
  out += "uses = " + to_toml_literal(Value(stage.uses)) + "\n";
  out += inputs_line(stage.inputs) + "\n";
  out += "gpus = " + to_toml_literal(Value(stage.gpus)) + "\n";
  out += "replicas = " + std::to_string(stage.replicas) + "\n";
  if (stage.worker != 0) out += "worker = " + std::to_string(stage.worker) + "\n";
  std::set<std::string> written;
  if (const StageTypeSchema* type = schema.find_stage_type(stage.uses)) {
    for (const KeySpec& key : type->keys) {
      auto it = stage.options.find(key.name);
      if (it == stage.options.end()) continue;
      out += toml_key(key.name) + " = " + to_toml_literal(it->second) + "\n";
      written.insert(key.name);
    }
  }
  for (const auto& [key, value] : stage.options)
    if (!written.count(key)) out += toml_key(key) + " = " + to_toml_literal(value) + "\n";
}

}  // namespace

std::string to_toml(const PipelineSpec& spec, const Schema& schema) {
  std::string out = "# Resolved pipeline: every key explicit, defaults filled in, no extends.\n";
  out += "plugins = " + to_toml_literal(Value(spec.plugins)) + "\n";
  for (const SectionSchema& section : schema.sections()) {
    out += "\n[" + section.name + "]\n";
    for (const KeySpec& key : section.keys)
      if (key.read) out += toml_key(key.name) + " = " + to_toml_literal(key.read(spec)) + "\n";
  }
  for (const StageSpec& stage : spec.stages) write_stage(stage, schema, out);
  return out;
}

}  // namespace qerl::dsl
