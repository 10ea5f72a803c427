// Fixed sections ([run], [model], ...) and top-level keys. Every key goes
// through its KeySpec (type, range, allowed values) and is stored in the
// typed PipelineSpec member by KeySpec::assign.
#include "dsl/detail/convert.hpp"
#include "dsl/detail/validate.hpp"
#include "dsl/suggest.hpp"

namespace qerl::dsl::detail {

namespace {

KeySpec plugins_key() {
  KeySpec k;
  k.name = "plugins";
  k.kind = ValueKind::string_list;
  return k;
}

std::vector<std::string> top_level_names(const Schema& schema) {
  std::vector<std::string> names{"plugins", "extends", "stages"};
  for (const SectionSchema& s : schema.sections()) names.push_back(s.name);
  return names;
}

void read_section(const Node& node, const SectionSchema& section, PipelineSpec& spec, Context& ctx) {
  if (!node.is_table()) {
    ctx.error(node.pos, section.name, "expected a table [" + section.name + "], got " + describe(node));
    return;
  }
  std::vector<std::string> names;
  for (const KeySpec& k : section.keys) names.push_back(k.name);
  for (const Entry& e : node.entries) {
    const std::string path = section.name + "." + e.key;
    const KeySpec* key = section.find_key(e.key);
    if (!key) {
      ctx.error(e.value.key_pos, path, "unknown key '" + e.key + "' in [" + section.name + "]" +
                                           did_you_mean(e.key, names));
      continue;
    }
    ctx.provided[path] = &e.value;
    if (std::optional<Value> v = to_value(e.value, *key, path, ctx)) key->assign(spec, *v);
    else ctx.invalid.insert(path);
  }
}

}  // namespace

std::vector<std::string> read_plugins(const Node& root, Context& ctx) {
  std::vector<std::string> out;
  const Node* node = root.find("plugins");
  if (!node) return out;
  if (!to_value(*node, plugins_key(), "plugins", ctx)) return out;
  for (const Node& item : node->items) {
    if (item.text.empty()) {
      ctx.error(item.pos, "plugins", "expected a path to a shared library, got an empty string");
      continue;
    }
    out.push_back(ctx.resolve_path(item.text, item.pos));
  }
  return out;
}

void read_sections(const Node& root, const Schema& schema, PipelineSpec& spec, Context& ctx) {
  for (const SectionSchema& section : schema.sections())
    for (const KeySpec& key : section.keys)
      if (key.default_value && key.assign) key.assign(spec, *key.default_value);

  spec.plugins = read_plugins(root, ctx);
  for (const Entry& e : root.entries) {
    if (e.key == "plugins" || e.key == "stages") continue;
    if (const SectionSchema* section = schema.find_section(e.key)) {
      read_section(e.value, *section, spec, ctx);
      continue;
    }
    const std::string what = e.value.is_table() ? "unknown section [" + e.key + "]"
                                                : "unknown top-level key '" + e.key + "'";
    ctx.error(e.value.key_pos, e.key, what + did_you_mean(e.key, top_level_names(schema)));
  }

  for (const SectionSchema& section : schema.sections()) {
    const Node* node = root.find(section.name);
    if (node && !node->is_table()) continue;  // reported above
    for (const KeySpec& key : section.keys) {
      if (key.default_value || (node && node->is_table() && node->find(key.name))) continue;
      ctx.error(node ? node->key_pos : root.pos, section.name + "." + key.name,
                "missing required key: " + key.doc);
    }
  }
}

}  // namespace qerl::dsl::detail
