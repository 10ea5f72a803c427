// NamePatterns: exact names and "re:" regexes anchored at the start of the
// name (std::regex ECMAScript with match_continuous, which covers the
// Python re syntax of typical ignore lists: `.*`, `\.`, `(a|b)`, `$`).
#include "common/name_pattern.hpp"

#include "common/error.hpp"

namespace qerl {

NamePatterns::NamePatterns(const std::vector<std::string>& patterns, const std::string& context) {
  for (const auto& p : patterns) {
    Entry e;
    e.text = p;
    if (p.rfind("re:", 0) == 0) {
      e.is_regex = true;
      try {
        e.regex = std::regex(p.substr(3), std::regex::ECMAScript);
      } catch (const std::regex_error& err) {
        throw Error(context + ": invalid regex in pattern \"" + p + "\": " + err.what());
      }
    }
    entries_.push_back(std::move(e));
  }
}

bool NamePatterns::matches(const std::string& name) {
  bool any = false;
  for (auto& e : entries_) {
    const bool hit = e.is_regex ? std::regex_search(name, e.regex, std::regex_constants::match_continuous)
                                : name == e.text;
    if (hit) {
      ++e.hits;
      any = true;
    }
  }
  return any;
}

std::vector<std::string> NamePatterns::unmatched() const {
  std::vector<std::string> out;
  for (const auto& e : entries_)
    if (e.hits == 0) out.push_back(e.text);
  return out;
}

}  // namespace qerl
