// --set overrides ("section.key=value") applied to the merged document. Each
// is typed like the key it overrides: a string key takes a bare word as is,
// anything else is parsed as a TOML value. Positions are "<--set>:i:col"
// (i = 1-based index of the override, col = where the value starts).
// Private to dsl/.
#pragma once

#include <string>
#include <vector>

#include "dsl/detail/context.hpp"
#include "dsl/detail/node.hpp"
#include "dsl/schema.hpp"

namespace qerl::dsl::detail {

inline const std::string override_label = "<--set>";

// plugins_only: apply `plugins=...` and skip everything else (used before
// plugins are loaded, when stage-type keys cannot be typed yet).
void apply_overrides(Node& root, const std::vector<std::string>& overrides, const Schema& schema,
                     bool plugins_only, Context& ctx);

}  // namespace qerl::dsl::detail
