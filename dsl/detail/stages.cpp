// [stages.<name>] tables: `uses` names a stage type in the schema; common
// keys (gpus, replicas) and the type's own keys are checked against their
// KeySpecs, defaults filled into StageSpec::options; `inputs` (see
// stage_inputs.cpp) must name the type's input ports.
#include <algorithm>
#include <set>

#include "dsl/detail/convert.hpp"
#include "dsl/detail/stage_inputs.hpp"
#include "dsl/detail/validate.hpp"
#include "dsl/suggest.hpp"

namespace qerl::dsl::detail {

namespace {

bool valid_stage_name(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), is_name_char);
}

std::vector<std::string> type_names(const Schema& schema) {
  std::vector<std::string> out;
  for (const StageTypeSchema& t : schema.stage_types()) out.push_back(t.name);
  return out;
}

const StageTypeSchema* read_uses(const Node& stage_node, const std::string& path, const Schema& schema,
                                 StageSpec& stage, Context& ctx) {
  const Node* uses = stage_node.find("uses");
  if (!uses) {
    ctx.error(stage_node.pos, path + ".uses", "missing required key: the stage type, e.g. uses = \"rollout\"");
    return nullptr;
  }
  ctx.provided[path + ".uses"] = uses;
  if (uses->type != NodeType::string) {
    ctx.error(uses->pos, path + ".uses", "expected string (a stage type), got " + describe(*uses));
    return nullptr;
  }
  stage.uses = uses->text;
  const StageTypeSchema* type = schema.find_stage_type(uses->text);
  if (!type) {
    std::vector<std::string> names = type_names(schema);
    std::string known;
    for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
    ctx.error(uses->pos, path + ".uses", "unknown stage type '" + uses->text + "'" +
                                             did_you_mean(uses->text, names) + "; known types: " +
                                             (known.empty() ? "(none)" : known));
  }
  return type;
}

void read_gpus(const Node& node, const KeySpec& spec, const std::string& path, StageSpec& stage,
               Context& ctx) {
  std::set<int64_t> seen;
  bool duplicates = false;
  for (const Node& item : node.items) {
    if (item.type != NodeType::integer || seen.insert(item.integer).second) continue;
    ctx.error(item.pos, path, "GPU slot " + std::to_string(item.integer) + " is listed twice");
    duplicates = true;
  }
  std::optional<Value> v = to_value(node, spec, path, ctx);
  if (!v || duplicates) {
    ctx.invalid.insert(path);
    return;
  }
  stage.gpus = std::get<std::vector<int64_t>>(*v);
}

void read_stage(const Entry& entry, const Schema& schema, PipelineSpec& spec, Context& ctx) {
  const std::string path = "stages." + entry.key;
  const Node& node = entry.value;
  if (!valid_stage_name(entry.key)) {
    ctx.error(node.key_pos, path, "stage names may hold only letters, digits, '_' and '-'");
    return;
  }
  if (!node.is_table()) {
    ctx.error(node.pos, path, "expected a table [" + path + "], got " + describe(node));
    return;
  }
  StageSpec stage;
  stage.name = entry.key;
  stage.pos = node.pos;
  const StageTypeSchema* type = read_uses(node, path, schema, stage, ctx);
  const bool type_known = type != nullptr;

  std::vector<std::string> names;
  for (const KeySpec& k : schema.common_stage_keys()) names.push_back(k.name);
  if (type)
    for (const KeySpec& k : type->keys) names.push_back(k.name);

  const Node* inputs = nullptr;
  for (const Entry& e : node.entries) {
    const std::string key_path = path + "." + e.key;
    stage.key_pos[e.key] = e.value.key_pos;
    if (e.key == "uses") continue;
    ctx.provided[key_path] = &e.value;
    if (e.key == "inputs") {
      inputs = &e.value;
    } else if (e.key == "gpus") {
      read_gpus(e.value, *schema.find_common_stage_key("gpus"), key_path, stage, ctx);
    } else if (e.key == "replicas") {
      if (auto v = to_value(e.value, *schema.find_common_stage_key("replicas"), key_path, ctx))
        stage.replicas = std::get<int64_t>(*v);
    } else if (e.key == "worker") {
      if (auto v = to_value(e.value, *schema.find_common_stage_key("worker"), key_path, ctx))
        stage.worker = std::get<int64_t>(*v);
    } else if (const KeySpec* key = type ? type->find_key(e.key) : nullptr) {
      if (auto v = to_value(e.value, *key, key_path, ctx)) stage.options[e.key] = *v;
    } else if (type_known) {
      ctx.error(e.value.key_pos, key_path, "unknown key '" + e.key + "' for stage type '" + type->name +
                                               "'" + did_you_mean(e.key, names));
    }
  }
  if (type) {
    for (const KeySpec& key : type->keys) {
      if (stage.options.count(key.name) || node.find(key.name)) continue;
      if (key.default_value) stage.options[key.name] = *key.default_value;
      else ctx.error(node.pos, path + "." + key.name, "missing required key: " + key.doc);
    }
  }
  stage.inputs = read_stage_inputs(inputs, node, path, type, ctx);
  spec.stages.push_back(std::move(stage));
}

}  // namespace

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

void read_stages(const Node& root, const Schema& schema, PipelineSpec& spec, Context& ctx) {
  const Node* stages = root.find("stages");
  if (stages && !stages->is_table()) {
    ctx.error(stages->pos, "stages", "expected tables [stages.<name>], got " + describe(*stages));
    return;
  }
  if (!stages || stages->entries.empty()) {
    ctx.error(stages ? stages->key_pos : root.pos, "stages",
              "the pipeline declares no stages; add [stages.<name>] tables with uses = \"<type>\"");
    return;
  }
  for (const Entry& e : stages->entries) read_stage(e, schema, spec, ctx);
}

}  // namespace qerl::dsl::detail
