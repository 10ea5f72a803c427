// The loader's own copy of a parsed TOML document. toml++ drops source
// positions when nodes are copied, and its tables are sorted by key; this tree
// keeps, for every value, the position of its key and value in the file that
// provided it, and table entries in declaration order, through extends merges
// and --set overrides. Private to dsl/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/diagnostic.hpp"

namespace qerl::dsl::detail {

enum class NodeType { table, array, string, integer, floating, boolean, datetime };

struct Entry;

struct Node {
  NodeType type = NodeType::table;
  SourcePos pos;      // where the value starts (a table: its [header] or '{')
  SourcePos key_pos;  // where the key naming it starts (array items: = pos)
  std::string text;   // string value, or the spelling of a date/time
  int64_t integer = 0;
  double floating = 0;
  bool boolean = false;
  std::vector<Entry> entries;  // table entries, in declaration order
  std::vector<Node> items;     // array items

  bool is_table() const { return type == NodeType::table; }
  const Node* find(std::string_view key) const;
  Node* find(std::string_view key);
  // Replaces the entry's value (keeping its place) or appends a new entry.
  Node& set(const std::string& key, Node value);
  void erase(std::string_view key);
};

struct Entry {
  std::string key;
  Node value;
};

// "integer", "table", ... for messages.
const char* type_name(NodeType type);
// What a user wrote, shortened: "\"abc\"", "1.5", "table".
std::string spelling(const Node& node);
// Type and spelling: "string \"abc\"", "float 1.5", "table" (for "got ...").
std::string describe(const Node& node);

// Derived values override base values; tables merge deeply; arrays replace.
void merge_into(Node& base, const Node& derived);

// Deepest table nesting accepted; deeper input is rejected (never recursed).
constexpr int max_depth = 48;

}  // namespace qerl::dsl::detail
