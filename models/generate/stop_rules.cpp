// Stop rule evaluation. Stop strings are searched in the decoded text of a
// window of the newest tokens (a few more tokens than the longest stop
// string has characters), so each step costs O(window), not O(length).
#include "models/generate/stop_rules.hpp"

#include <algorithm>

#include "common/error.hpp"

namespace qerl::models {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::length:
      return "length";
    case FinishReason::eos:
      return "eos";
    case FinishReason::stop_sequence:
      return "stop_sequence";
    case FinishReason::stop_string:
      return "stop_string";
  }
  return "?";
}

StopChecker::StopChecker(StopRules rules) : rules_(std::move(rules)) {
  if (!rules_.stop_strings.empty() && !rules_.decode) throw Error("stop strings need a decode function (a tokenizer)");
  for (const auto& s : rules_.stop_strings) {
    if (s.empty()) throw Error("stop strings must not be empty");
    longest_stop_string_ = std::max(longest_stop_string_, s.size());
  }
  for (const auto& seq : rules_.stop_sequences)
    if (seq.empty()) throw Error("stop token sequences must not be empty");
}

bool StopChecker::should_stop(const std::vector<int64_t>& generated, FinishReason& reason) const {
  if (generated.empty()) return false;
  const int64_t last = generated.back();
  if (std::find(rules_.eos_token_ids.begin(), rules_.eos_token_ids.end(), last) != rules_.eos_token_ids.end()) {
    reason = FinishReason::eos;
    return true;
  }
  for (const auto& seq : rules_.stop_sequences) {
    if (seq.size() <= generated.size() && std::equal(seq.rbegin(), seq.rend(), generated.rbegin())) {
      reason = FinishReason::stop_sequence;
      return true;
    }
  }
  if (!rules_.stop_strings.empty()) {
    // A stop string completed by the newest token ends within the text of
    // the last `window` tokens (one found earlier would have stopped the row).
    const size_t window = std::min(generated.size(), longest_stop_string_ + 4);
    const std::vector<int64_t> tail(generated.end() - static_cast<std::ptrdiff_t>(window), generated.end());
    const std::string text = rules_.decode(tail);
    for (const auto& s : rules_.stop_strings) {
      if (text.find(s) != std::string::npos) {
        reason = FinishReason::stop_string;
        return true;
      }
    }
  }
  return false;
}

}  // namespace qerl::models
