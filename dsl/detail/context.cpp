// Context: diagnostic collection (sorted by source, then line and column, so
// a user reads them top to bottom) and path resolution per source file.
#include "dsl/detail/context.hpp"

#include <algorithm>
#include <filesystem>
#include <tuple>

namespace qerl::dsl::detail {

namespace fs = std::filesystem;

void Context::error(const SourcePos& pos, std::string key_path, std::string message) {
  errors_.push_back(Diagnostic{Severity::error, pos, std::move(key_path), std::move(message)});
}

void Context::warning(const SourcePos& pos, std::string key_path, std::string message) {
  warnings_.push_back(Diagnostic{Severity::warning, pos, std::move(key_path), std::move(message)});
}

void Context::add_source(const std::string& label, const std::string& dir) {
  for (const auto& source : sources_)
    if (source.first == label) return;
  sources_.emplace_back(label, dir);
}

std::string Context::resolve_path(const std::string& value, const SourcePos& pos) const {
  fs::path path(value);
  if (path.is_relative()) {
    for (const auto& source : sources_) {
      if (source.first == pos.file) {
        path = fs::path(source.second) / path;
        break;
      }
    }
  }
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  return (ec ? path : absolute).lexically_normal().string();
}

std::vector<Diagnostic> Context::sorted(std::vector<Diagnostic> diagnostics) const {
  auto rank = [&](const std::string& file) {
    for (size_t i = 0; i < sources_.size(); ++i)
      if (sources_[i].first == file) return i;
    return sources_.size();
  };
  std::stable_sort(diagnostics.begin(), diagnostics.end(),
                   [&](const Diagnostic& a, const Diagnostic& b) {
                     return std::make_tuple(rank(a.pos.file), a.pos.line, a.pos.column) <
                            std::make_tuple(rank(b.pos.file), b.pos.line, b.pos.column);
                   });
  return diagnostics;
}

void Context::throw_if_errors() const {
  if (errors_.empty()) return;
  std::vector<Diagnostic> all = sorted(errors_);
  for (Diagnostic& w : sorted(warnings_)) all.push_back(std::move(w));
  throw PipelineError(std::move(all));
}

std::vector<Diagnostic> Context::sorted_warnings() const { return sorted(warnings_); }

}  // namespace qerl::dsl::detail
