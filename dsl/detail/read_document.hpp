// Reading pipeline sources into a Node tree: TOML parsing (syntax errors
// become one diagnostic at toml++'s position) and the `extends` chain, merged
// base-first so the derived file wins. Private to dsl/.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/detail/context.hpp"
#include "dsl/detail/node.hpp"

namespace qerl::dsl::detail {

// Parses `text`; positions are labelled `label`. nullopt after a syntax error
// (reported to ctx).
std::optional<Node> parse_toml(std::string_view text, const std::string& label, Context& ctx);

struct ExtendsPolicy {
  // When set, every extends target must lie inside this directory (the
  // fuzzer's sandbox); otherwise any readable file may be a base.
  std::optional<std::string> root;
};

// Parses a pipeline source (`label` names it in diagnostics, `dir` is where
// its relative paths resolve, "" = current directory) and merges its extends
// chain. `chain` holds the canonical paths of the files already on the chain
// (cycle detection). nullopt after any error (reported to ctx).
std::optional<Node> read_with_extends(std::string_view text, const std::string& label,
                                      const std::string& dir, const ExtendsPolicy& policy,
                                      std::vector<std::string> chain, Context& ctx);

// Reads a whole file; nullopt (with a reason in `why`) when it cannot.
std::optional<std::string> read_file(const std::string& path, std::string& why);

}  // namespace qerl::dsl::detail
