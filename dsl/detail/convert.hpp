// Checking one value against its KeySpec: TOML type (an integer is accepted
// for a float key, a float never for an integer key), numeric range, allowed
// strings. Every problem becomes a diagnostic at the value's position.
// Private to dsl/.
#pragma once

#include <optional>
#include <string>

#include "dsl/detail/context.hpp"
#include "dsl/detail/node.hpp"
#include "dsl/schema.hpp"
#include "dsl/value.hpp"

namespace qerl::dsl::detail {

// nullopt when the value is unusable (every problem reported to ctx).
std::optional<Value> to_value(const Node& node, const KeySpec& spec, const std::string& key_path,
                              Context& ctx);

// "must be >= 1", "must be in (0, 1]", ... or "" when the key has no range.
std::string range_text(const KeySpec& spec);

// The shortest spelling of a number that reads back the same (for messages).
std::string number_text(double value);

}  // namespace qerl::dsl::detail
