// Module-name patterns of quantization ignore lists and AQN targets, with
// compressed-tensors' semantics: "re:<regex>" matches like Python's re.match
// (anchored at the start only; write `$` yourself), anything else must equal
// the name exactly. Used to pick parameters and modules by name.
#pragma once

#include <regex>
#include <string>
#include <vector>

namespace qerl {

class NamePatterns {
 public:
  // Throws qerl::Error naming `context` and the pattern when a regex is invalid.
  NamePatterns(const std::vector<std::string>& patterns, const std::string& context);

  // True when any pattern matches `name`; counts the hit for unmatched().
  bool matches(const std::string& name);

  // The patterns that have matched nothing so far (worth a warning).
  std::vector<std::string> unmatched() const;

  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    std::string text;
    bool is_regex = false;
    std::regex regex;
    int64_t hits = 0;
  };
  std::vector<Entry> entries_;
};

}  // namespace qerl
