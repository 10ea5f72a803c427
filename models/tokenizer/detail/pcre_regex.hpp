// A compiled PCRE2 pattern in UTF-8 + UCP mode (\p{L}, \s, \w and case-less
// matching by Unicode properties), which is how HF's Oniguruma patterns for
// split rules behave (onig_syntax.hpp maps the escapes that differ).
// Matching is bounded (match and depth limits), so a hostile pattern fails
// with qerl::Error instead of running for ever.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qerl::models::detail {

struct RegexMatch {
  size_t start, end;  // byte offsets, end > start
};

class Regex {
 public:
  // `where` names the pattern in errors ("tokenizer.json: pre_tokenizer.pattern");
  // a literal pattern matches its text exactly (HF's Split {"String": ...}).
  Regex(std::string_view pattern, std::string where, bool literal = false);

  // Non-empty, non-overlapping matches in `text` (valid UTF-8), left to right.
  // An empty match is skipped and the search resumes one character later.
  std::vector<RegexMatch> find_all(std::string_view text) const;

  // Whether the pattern matches at text[0] (an anchored match).
  bool matches_prefix(std::string_view text) const;

 private:
  struct Compiled;
  std::shared_ptr<const Compiled> compiled_;
};

}  // namespace qerl::models::detail
