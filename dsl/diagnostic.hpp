// Diagnostics of the pipeline language: where (file:line:col), which key
// path, and what was expected. The loader collects every diagnostic of a file
// before throwing, so a user fixes all mistakes in one pass.
#pragma once

#include <string>
#include <vector>

#include "common/error.hpp"

namespace qerl::dsl {

// A position in a pipeline source. `file` is the path as given (or
// "<--set>" for command-line overrides, where `column` is the offset in the
// override text and `line` the override's 1-based index).
struct SourcePos {
  std::string file;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based; 0 = unknown
};

enum class Severity { error, warning };

struct Diagnostic {
  Severity severity = Severity::error;
  SourcePos pos;
  std::string key_path;  // "algorithm.lr", "stages.rollout.inputs.weights"; may be empty
  std::string message;   // what is wrong and what was expected, one line

  // "file:line:col: error: key 'a.b': message"
  std::string format() const;
};

// Thrown when a pipeline has at least one error. what() is all diagnostics,
// one per line, errors first in source order.
class PipelineError : public Error {
 public:
  explicit PipelineError(std::vector<Diagnostic> diagnostics);
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

// Collects errors found after loading (graph, placement) so that all of them
// are reported together, then throws them as one PipelineError.
class DiagnosticList {
 public:
  void add(const SourcePos& pos, std::string key_path, std::string message);
  bool empty() const { return list_.empty(); }
  void throw_if_any();  // throws PipelineError when at least one was added

 private:
  std::vector<Diagnostic> list_;
};

}  // namespace qerl::dsl
