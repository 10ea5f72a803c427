// The two PromptSource kinds and the data.source dispatcher. Problems of a
// file are loaded once (GSM8K train is ~7.5k lines); arith problems are
// generated per get() since generation is cheap and deterministic.
#include "tasks/prompt_source.hpp"

#include <utility>

#include "common/error.hpp"
#include "tasks/arith_generator.hpp"
#include "tasks/gsm8k_reader.hpp"

namespace qerl::tasks {
namespace {

void check_index(const PromptSource& source, int64_t index) {
  if (index < 0 || index >= source.size()) {
    throw Error(source.origin() + ": problem index " + std::to_string(index) + " is outside [0, " +
                std::to_string(source.size()) + ")");
  }
}

}  // namespace

ArithSource::ArithSource(ArithSpec spec)
    : spec_(std::move(spec)), origin_(format_arith_spec(spec_)) {
  validate_arith_options(spec_.options, origin_);
  if (spec_.size < 1) throw Error(origin_ + ": size must be at least 1");
}

Problem ArithSource::get(int64_t index) const {
  check_index(*this, index);
  return generate_arith_problem(spec_.options, spec_.seed, index);
}

ProblemList::ProblemList(std::vector<Problem> problems, std::string origin)
    : problems_(std::move(problems)), origin_(std::move(origin)) {}

Problem ProblemList::get(int64_t index) const {
  check_index(*this, index);
  return problems_[static_cast<size_t>(index)];
}

std::unique_ptr<PromptSource> open_prompt_source(const std::string& spec) {
  constexpr std::string_view kBuiltin = "builtin:";
  if (spec.compare(0, kBuiltin.size(), kBuiltin) == 0) {
    const std::string name = spec.substr(kBuiltin.size(), spec.find('?') - kBuiltin.size());
    if (name != "arith") {
      throw Error("data.source '" + spec + "': unknown builtin task '" + name + "' (known: arith)");
    }
    return std::make_unique<ArithSource>(parse_arith_spec(spec));
  }
  std::vector<Problem> problems = read_gsm8k_jsonl(spec);
  if (problems.empty()) throw Error(spec + ": GSM8K file has no problems");
  return std::make_unique<ProblemList>(std::move(problems), spec);
}

}  // namespace qerl::tasks
