// Enums whose values have one spelling in pipeline files: each enum E
// declares, next to itself, `constexpr auto enum_names(E)` returning an
// array of {value, name} pairs. That table is the only place the names are
// written; the pipeline schema, error messages and resolved.toml read it
// through the helpers below.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qerl {

template <class E>
struct EnumName {
  E value;
  const char* name;
};

// The name of `value` in its enum's table ("?" for a value the table lacks,
// which a complete table never has).
template <class E>
const char* enum_name(E value) {
  for (const auto& entry : enum_names(E{}))
    if (entry.value == value) return entry.name;
  return "?";
}

// The value spelled `name` (exact, case-sensitive), or nullopt.
template <class E>
std::optional<E> parse_enum(std::string_view name) {
  for (const auto& entry : enum_names(E{}))
    if (name == entry.name) return entry.value;
  return std::nullopt;
}

// Every name of E, in table order (the schema's allowed values).
template <class E>
std::vector<std::string> enum_name_list() {
  std::vector<std::string> out;
  for (const auto& entry : enum_names(E{})) out.emplace_back(entry.name);
  return out;
}

// "\"a\", \"b\" or \"c\"", for messages.
template <class E>
std::string enum_choices_text() {
  const auto names = enum_name_list<E>();
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += "\"" + names[i] + "\"";
  }
  return out;
}

}  // namespace qerl
