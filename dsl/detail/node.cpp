// Node tree operations: lookup, ordered insertion, deep merge, and the short
// descriptions of a value used in "expected X, got Y" messages.
#include "dsl/detail/node.hpp"

#include <algorithm>

#include "dsl/value.hpp"

namespace qerl::dsl::detail {

const Node* Node::find(std::string_view key) const {
  for (const Entry& e : entries)
    if (e.key == key) return &e.value;
  return nullptr;
}

Node* Node::find(std::string_view key) {
  for (Entry& e : entries)
    if (e.key == key) return &e.value;
  return nullptr;
}

Node& Node::set(const std::string& key, Node value) {
  if (Node* existing = find(key)) {
    *existing = std::move(value);
    return *existing;
  }
  entries.push_back(Entry{key, std::move(value)});
  return entries.back().value;
}

void Node::erase(std::string_view key) {
  entries.erase(std::remove_if(entries.begin(), entries.end(),
                               [&](const Entry& e) { return e.key == key; }),
                entries.end());
}

const char* type_name(NodeType type) {
  switch (type) {
    case NodeType::table: return "table";
    case NodeType::array: return "array";
    case NodeType::string: return "string";
    case NodeType::integer: return "integer";
    case NodeType::floating: return "float";
    case NodeType::boolean: return "boolean";
    case NodeType::datetime: return "date/time";
  }
  return "value";
}

std::string spelling(const Node& node) {
  constexpr size_t max_shown = 40;
  std::string spelled;
  switch (node.type) {
    case NodeType::string: spelled = to_toml_literal(Value(node.text)); break;
    case NodeType::integer: spelled = std::to_string(node.integer); break;
    case NodeType::floating: spelled = to_toml_literal(Value(node.floating)); break;
    case NodeType::boolean: spelled = node.boolean ? "true" : "false"; break;
    case NodeType::datetime: spelled = node.text; break;
    case NodeType::table:
    case NodeType::array: return type_name(node.type);
  }
  if (spelled.size() > max_shown) {
    size_t cut = max_shown;
    while (cut > 0 && (static_cast<unsigned char>(spelled[cut]) & 0xC0) == 0x80) --cut;  // UTF-8 boundary
    spelled = spelled.substr(0, cut) + "...";
  }
  return spelled;
}

std::string describe(const Node& node) {
  if (node.type == NodeType::table || node.type == NodeType::array) return type_name(node.type);
  return std::string(type_name(node.type)) + " " + spelling(node);
}

void merge_into(Node& base, const Node& derived) {
  if (!base.is_table() || !derived.is_table()) {
    base = derived;
    return;
  }
  for (const Entry& e : derived.entries) {
    Node* existing = base.find(e.key);
    if (existing && existing->is_table() && e.value.is_table()) {
      merge_into(*existing, e.value);
    } else if (existing) {
      *existing = e.value;
    } else {
      base.entries.push_back(e);
    }
  }
}

}  // namespace qerl::dsl::detail
