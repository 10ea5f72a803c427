// Diagnostic::format and PipelineError: the one-line spelling of a finding
// ("file:line:col: error: key 'a.b': message") and the exception that carries
// every finding of a pipeline, errors first, so qerl-run can print it as is.
#include "dsl/diagnostic.hpp"

#include <algorithm>

namespace qerl::dsl {

std::string Diagnostic::format() const {
  std::string out = pos.file.empty() ? "<pipeline>" : pos.file;
  if (pos.line > 0) {
    out += ":" + std::to_string(pos.line);
    if (pos.column > 0) out += ":" + std::to_string(pos.column);
  }
  out += severity == Severity::error ? ": error: " : ": warning: ";
  if (!key_path.empty()) out += "key '" + key_path + "': ";
  out += message;
  return out;
}

namespace {

// Errors first; within each severity the order given (the loader sorts by
// source position before throwing).
std::vector<Diagnostic> errors_first(std::vector<Diagnostic> diagnostics) {
  std::stable_partition(diagnostics.begin(), diagnostics.end(),
                        [](const Diagnostic& d) { return d.severity == Severity::error; });
  return diagnostics;
}

std::string join_lines(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const Diagnostic& d : errors_first(diagnostics)) {
    if (!out.empty()) out += '\n';
    out += d.format();
  }
  return out;
}

}  // namespace

PipelineError::PipelineError(std::vector<Diagnostic> diagnostics)
    : Error(join_lines(diagnostics)), diagnostics_(errors_first(std::move(diagnostics))) {}

void DiagnosticList::add(const SourcePos& pos, std::string key_path, std::string message) {
  Diagnostic d;
  d.pos = pos;
  d.key_path = std::move(key_path);
  d.message = std::move(message);
  list_.push_back(std::move(d));
}

void DiagnosticList::throw_if_any() {
  if (!list_.empty()) throw PipelineError(std::move(list_));
}

}  // namespace qerl::dsl
