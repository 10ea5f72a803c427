// PromptSource: indexed access to the problems of one data.source, whether
// generated (builtin:arith, conceptually infinite, cut to a configured size)
// or read from a GSM8K JSONL file. Splits and epochs work on indices
// [0, size()) and never care which kind of source is behind them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tasks/arith_spec.hpp"
#include "tasks/problem.hpp"

namespace qerl::tasks {

class PromptSource {
 public:
  virtual ~PromptSource() = default;
  virtual int64_t size() const = 0;
  // Throws qerl::Error if index is outside [0, size()).
  virtual Problem get(int64_t index) const = 0;
  // The spec or path it was opened from, for logs and errors.
  virtual const std::string& origin() const = 0;
};

// builtin:arith: get(i) generates problem i on demand (nothing is stored).
class ArithSource final : public PromptSource {
 public:
  explicit ArithSource(ArithSpec spec);
  int64_t size() const override { return spec_.size; }
  Problem get(int64_t index) const override;
  const std::string& origin() const override { return origin_; }
  const ArithSpec& spec() const { return spec_; }

 private:
  ArithSpec spec_;
  std::string origin_;
};

// A fixed list of problems held in memory (a GSM8K file, or a test's list).
class ProblemList final : public PromptSource {
 public:
  ProblemList(std::vector<Problem> problems, std::string origin);
  int64_t size() const override { return static_cast<int64_t>(problems_.size()); }
  Problem get(int64_t index) const override;
  const std::string& origin() const override { return origin_; }

 private:
  std::vector<Problem> problems_;
  std::string origin_;
};

// "builtin:arith[?options]" or a path to a GSM8K-style .jsonl file (used as
// given; resolve relative paths before calling). An empty file is an error.
std::unique_ptr<PromptSource> open_prompt_source(const std::string& spec);

}  // namespace qerl::tasks
