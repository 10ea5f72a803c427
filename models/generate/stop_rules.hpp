// When a generated row stops: an EOS token, a token-id stop sequence at the
// end of the generated tokens, a stop string in the decoded text (needs a
// decode callback), or max_new_tokens. The tokens that triggered the stop
// stay in the output (RL trains on them); the reason is reported per row.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace qerl::models {

enum class FinishReason { length, eos, stop_sequence, stop_string };
const char* finish_reason_name(FinishReason reason);

struct StopRules {
  std::vector<int64_t> eos_token_ids;
  std::vector<std::vector<int64_t>> stop_sequences;  // token ids
  std::vector<std::string> stop_strings;
  // Token ids -> text; required when stop_strings is not empty.
  std::function<std::string(const std::vector<int64_t>&)> decode;
};

// Per-row stop state over the generated tokens only (never the prompt).
class StopChecker {
 public:
  explicit StopChecker(StopRules rules);

  // generated: the row's generated tokens, the newest last. Returns true and
  // sets `reason` when the newest token ends the row.
  bool should_stop(const std::vector<int64_t>& generated, FinishReason& reason) const;

 private:
  StopRules rules_;
  size_t longest_stop_string_ = 0;
};

}  // namespace qerl::models
