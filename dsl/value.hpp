// Value: a typed pipeline value (what a key holds after validation), and
// ValueKind: what a key accepts. Small on purpose: pipelines hold scalars,
// strings and flat lists; anything richer is a section or a stage.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace qerl::dsl {

enum class ValueKind { boolean, integer, floating, string, string_list, integer_list };

using Value = std::variant<bool, int64_t, double, std::string, std::vector<std::string>,
                           std::vector<int64_t>>;

// "integer", "list of strings", ... as used in error messages and docs.
const char* kind_name(ValueKind kind);
// TOML spelling of a value: 3, 1e-05, "x", ["a", "b"].
std::string to_toml_literal(const Value& value);

}  // namespace qerl::dsl
