// Applying --set overrides: find the KeySpec the path names (sections,
// `plugins`, `stages.<name>.<key>`, `stages.<name>.inputs.<port>`), parse the
// value accordingly and replace the node in the document. Type and range are
// then checked by the normal validation, at the override's position.
#include "dsl/detail/overrides.hpp"

#include "dsl/detail/read_document.hpp"
#include "dsl/suggest.hpp"
#include "dsl/value.hpp"

namespace qerl::dsl::detail {

namespace {

std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> parts(1);
  for (char c : s) {
    if (c == '.') parts.emplace_back();
    else parts.back() += c;
  }
  return parts;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

void stamp(Node& node, const SourcePos& pos) {
  node.pos = node.key_pos = pos;
  for (Entry& e : node.entries) stamp(e.value, pos);
  for (Node& item : node.items) stamp(item, pos);
}

// How the value text of one override is to be read.
enum class Reading { toml, string_or_toml, unknown_key };

struct Target {
  Reading reading = Reading::unknown_key;
  std::string message;   // unknown keys: what is wrong, with a suggestion
  std::string expected;  // known keys: what the value must be, for parse errors
};

std::vector<std::string> key_names(const std::vector<KeySpec>& keys) {
  std::vector<std::string> out;
  for (const KeySpec& k : keys) out.push_back(k.name);
  return out;
}

Target target_of(const KeySpec& spec) {
  return {spec.kind == ValueKind::string || spec.single_string_ok ? Reading::string_or_toml : Reading::toml, "",
          kind_name(spec.kind)};
}

Target stage_target(const Node& root, const std::vector<std::string>& path, const Schema& schema) {
  const Node* stages = root.find("stages");
  const Node* stage = stages && stages->is_table() ? stages->find(path[1]) : nullptr;
  if (!stage) {
    std::vector<std::string> names;
    if (stages)
      for (const Entry& e : stages->entries) names.push_back(e.key);
    return {Reading::unknown_key, "no stage '" + path[1] + "' to override" + did_you_mean(path[1], names), ""};
  }
  const std::string& key = path[2];
  if (key == "inputs") {
    if (path.size() == 3) return {Reading::toml, "", "table of inputs"};
    if (path.size() == 4) return {Reading::string_or_toml, "", "input reference"};
  } else if (path.size() == 3) {
    if (const KeySpec* common = schema.find_common_stage_key(key)) return target_of(*common);
    const Node* uses = stage->is_table() ? stage->find("uses") : nullptr;
    const StageTypeSchema* type =
        uses && uses->type == NodeType::string ? schema.find_stage_type(uses->text) : nullptr;
    if (!type) return {Reading::string_or_toml, "", "value"};  // a bad `uses` is reported later
    if (const KeySpec* spec = type->find_key(key)) return target_of(*spec);
    std::vector<std::string> names = key_names(schema.common_stage_keys());
    for (const std::string& n : key_names(type->keys)) names.push_back(n);
    return {Reading::unknown_key, "unknown key '" + key + "' for stage type '" + type->name + "'" +
                                      did_you_mean(key, names), ""};
  }
  return {Reading::unknown_key, "unknown key; stage overrides are stages.<name>.<key> or "
                                "stages.<name>.inputs.<port>", ""};
}

Target find_target(const Node& root, const std::vector<std::string>& path, const Schema& schema) {
  if (path.size() == 1 && path[0] == "plugins") return {Reading::toml, "", "list of strings"};
  if (path[0] == "stages" && path.size() >= 3) return stage_target(root, path, schema);
  std::vector<std::string> all{"plugins"};
  for (const SectionSchema& s : schema.sections())
    for (const KeySpec& k : s.keys) all.push_back(s.name + "." + k.name);
  const SectionSchema* section = schema.find_section(path[0]);
  if (section && path.size() == 2) {
    if (const KeySpec* spec = section->find_key(path[1])) return target_of(*spec);
  }
  std::string joined = path[0];
  for (size_t i = 1; i < path.size(); ++i) joined += "." + path[i];
  return {Reading::unknown_key, "unknown key" + did_you_mean(joined, all), ""};
}

std::optional<Node> parse_value(const std::string& text, const Target& target, const SourcePos& pos,
                                Context& ctx, const std::string& key_path) {
  // A list key that also takes one bare word (cluster.workers) reads [...] as TOML.
  const bool list = target.expected == kind_name(ValueKind::string_list);
  const bool quoted = !text.empty() && (text[0] == '"' || text[0] == '\'' || text[0] == '{' || (list && text[0] == '['));
  // A bare word for a string key is the string itself; it still goes through
  // toml++ (as an escaped literal) so that invalid UTF-8 is refused here and
  // to_toml's output always parses.
  const std::string toml_text = target.reading == Reading::string_or_toml && !quoted
                                    ? to_toml_literal(Value(text)) : text;
  Context scratch;
  std::optional<Node> doc;
  if (toml_text.find_first_of("\r\n") == std::string::npos)
    doc = parse_toml("v = " + toml_text, override_label, scratch);
  const Node* value = doc ? doc->find("v") : nullptr;
  if (!value || doc->entries.size() != 1) {
    ctx.error(pos, key_path, "expected " + target.expected + ", got '" + text +
                                 "' which is not a TOML value (e.g. 3, 2e-6, true, \"text\", [0, 1])");
    return std::nullopt;
  }
  Node node = *value;
  stamp(node, pos);
  return node;
}

void insert(Node& root, const std::vector<std::string>& path, Node value, const SourcePos& key_pos) {
  Node* table = &root;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    Node* next = table->find(path[i]);
    if (!next || !next->is_table()) {
      Node fresh;
      stamp(fresh, key_pos);
      next = &table->set(path[i], std::move(fresh));
    }
    table = next;
  }
  value.key_pos = key_pos;
  table->set(path.back(), std::move(value));
}

}  // namespace

void apply_overrides(Node& root, const std::vector<std::string>& overrides, const Schema& schema,
                     bool plugins_only, Context& ctx) {
  if (!overrides.empty()) ctx.add_source(override_label, "");
  for (size_t i = 0; i < overrides.size(); ++i) {
    const std::string& text = overrides[i];
    const int index = static_cast<int>(i + 1);
    const SourcePos start{override_label, index, 1};
    const size_t eq = text.find('=');
    if (eq == std::string::npos) {
      if (!plugins_only) ctx.error(start, "", "expected section.key=value, got '" + text + "'");
      continue;
    }
    const std::string key = trim(text.substr(0, eq));
    std::vector<std::string> path = split_dots(key);
    if (plugins_only && key != "plugins") continue;
    bool empty_part = false;
    for (const std::string& p : path) empty_part = empty_part || p.empty();
    if (empty_part) {
      ctx.error(start, key, "malformed key path; expected section.key=value");
      continue;
    }
    Target target = find_target(root, path, schema);
    if (target.reading == Reading::unknown_key) {
      ctx.error(start, key, target.message);
      continue;
    }
    size_t value_start = text.find_first_not_of(" \t", eq + 1);
    if (value_start == std::string::npos) value_start = text.size();
    const SourcePos value_pos{override_label, index, static_cast<int>(value_start + 1)};
    std::optional<Node> value = parse_value(text.substr(value_start), target, value_pos, ctx, key);
    if (value) insert(root, path, std::move(*value), start);
  }
}

}  // namespace qerl::dsl::detail
