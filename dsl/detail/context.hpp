// State shared by the loader's passes: the diagnostics collected so far, the
// directory each source file's relative paths resolve against, and which key
// paths the user set (with positions) or got wrong. Private to dsl/.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "dsl/diagnostic.hpp"
#include "dsl/detail/node.hpp"

namespace qerl::dsl::detail {

class Context {
 public:
  void error(const SourcePos& pos, std::string key_path, std::string message);
  void warning(const SourcePos& pos, std::string key_path, std::string message);
  bool has_errors() const { return !errors_.empty(); }

  // Registers a source (a file as named in diagnostics, "<--set>", or a text
  // pipeline's name) and the directory its relative paths resolve against
  // ("" = the current directory). Diagnostics sort by registration order.
  void add_source(const std::string& label, const std::string& dir);
  // Absolute, lexically normal form of `value`, relative to the directory of
  // the source that `pos` points into.
  std::string resolve_path(const std::string& value, const SourcePos& pos) const;

  // Throws PipelineError with every error (and warning) in source order.
  void throw_if_errors() const;
  std::vector<Diagnostic> sorted_warnings() const;

  // Key paths ("aqn.sigma_end") the pipeline sets, and those it set wrongly
  // (cross-field checks skip the latter to avoid follow-on noise).
  std::map<std::string, const Node*> provided;
  std::set<std::string> invalid;

 private:
  std::vector<Diagnostic> sorted(std::vector<Diagnostic> diagnostics) const;

  std::vector<Diagnostic> errors_;
  std::vector<Diagnostic> warnings_;
  std::vector<std::pair<std::string, std::string>> sources_;  // label, dir
};

}  // namespace qerl::dsl::detail
