// A single pass over the pattern that tracks whether it is inside a
// character class: there an escape is replaced by the class body, outside
// by a bracketed class. A negated escape inside a class (e.g. [\S\d]) cannot
// be spelled as a class body and is left to PCRE2's meaning.
#include "models/tokenizer/detail/onig_syntax.hpp"

namespace qerl::models::detail {

namespace {

// Class bodies with Oniguruma's Unicode meaning.
constexpr const char* space_body =
    R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
constexpr const char* word_body = R"(\p{L}\p{M}\p{N}\p{Pc})";
constexpr const char* hex_body = "0-9a-fA-F";

const char* body_of(char escape) {
  switch (escape) {
    case 's':
    case 'S': return space_body;
    case 'w':
    case 'W': return word_body;
    case 'h':
    case 'H': return hex_body;
    default: return nullptr;
  }
}

}  // namespace

std::string onig_to_pcre2(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      if (e == 'Q') {  // \Q...\E: copied verbatim
        const size_t end = pattern.find("\\E", i + 2);
        const size_t stop = end == std::string_view::npos ? pattern.size() : end + 2;
        out.append(pattern.substr(i, stop - i));
        i = stop - 1;
        continue;
      }
      const char* body = body_of(e);
      const bool negated = e == 'S' || e == 'W' || e == 'H';
      if (body != nullptr && !(in_class && negated)) {
        if (in_class) {
          out += body;
        } else {
          out += negated ? "[^" : "[";
          out += body;
          out += ']';
        }
      } else {
        out += c;
        out += e;
      }
      ++i;
      continue;
    }
    out += c;
    if (c == '[' && !in_class) {
      in_class = true;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // a literal ']'
    } else if (c == '[' && in_class && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      const size_t end = pattern.find(":]", i + 2);  // [:alpha:]
      if (end != std::string_view::npos) {
        out.append(pattern.substr(i + 1, end + 1 - i));
        i = end + 1;
      }
    } else if (c == ']' && in_class) {
      in_class = false;
    }
  }
  return out;
}

}  // namespace qerl::models::detail
