// The scan behind find_parser_hazards: a small TOML lexer that tracks only
// what decides whether toml++ classifies a code point as whitespace: comments,
// the four string kinds, escapes and line-ending backslashes.
#include "dsl/detail/parser_guard.hpp"

#include <cstdint>

namespace qerl::dsl::detail {

bool hits_toml_unreachable(char32_t c) {
  if (c < 0xA0 || c > 0xFEFF) return false;
  const uint64_t child = (static_cast<uint64_t>(c) - 0xA0) / 0x3FA;
  if ((uint64_t{1} << child) & 0x7FFFFFFFFFFFF75Eull) return false;
  if (c == 0xA0 || c == 0x3000 || c == 0xFEFF) return false;
  return child != 0x05 && child != 0x07;
}

namespace {

enum class State { normal, comment, basic, literal, ml_basic, ml_literal };

class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}

  // A hazard is recorded and stepped over as if it were any other
  // character, so the scan goes on in the same lexical state.
  std::vector<ParserHazard> run() {
    std::vector<ParserHazard> found;
    while (pos_ < text_.size()) {
      if (std::optional<ParserHazard> h = step()) {
        found.push_back(*h);
        if (pos_ == h->offset) advance(h->code_point, h->length);
      }
    }
    return found;
  }

 private:
  // Decodes the code point at pos_ (invalid UTF-8: one byte, U+FFFD-free
  // value 0, which toml++ rejects before classifying anything).
  char32_t peek(size_t& length) const {
    const auto b = [&](size_t i) { return static_cast<unsigned char>(text_[pos_ + i]); };
    const unsigned char lead = b(0);
    length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || pos_ + length > text_.size()) {
      length = 1;
      return lead < 0x80 ? lead : 0;
    }
    char32_t c = length == 1 ? lead : lead & (0x7F >> length);
    for (size_t i = 1; i < length; ++i) {
      if ((b(i) >> 6) != 0x2) {
        length = 1;
        return 0;
      }
      c = (c << 6) | (b(i) & 0x3F);
    }
    return c;
  }

  void advance(char32_t c, size_t length) {
    pos_ += length;
    if (c == '\n') {
      ++line_;
      column_ = 1;
    } else {
      ++column_;
    }
  }

  bool at(std::string_view s) const { return text_.substr(pos_, s.size()) == s; }

  void skip_ascii(size_t n) {
    for (size_t i = 0; i < n && pos_ < text_.size(); ++i) advance(static_cast<char32_t>(text_[pos_]), 1);
  }

  std::optional<ParserHazard> hazard(char32_t c, size_t length, bool in_string) const {
    if (!hits_toml_unreachable(c)) return std::nullopt;
    return ParserHazard{pos_, length, line_, column_, c, in_string};
  }

  // Closing delimiter of a multi-line string: 3 quotes, up to 2 more belong
  // to the content.
  void close_multi_line(char quote) {
    size_t n = 0;
    while (n < 5 && pos_ < text_.size() && text_[pos_] == quote) skip_ascii(1), ++n;
    end_string(quote);
  }

  void end_string(char32_t last) {
    state_ = State::normal;
    last_token_char_ = last == '\n' ? '\n' : '"';
  }

  // toml++ starts a string only where a key or a value begins; elsewhere
  // (e.g. `5'x` inside a bare value) it keeps scanning the value and asks
  // "whitespace?" of every following code point, so they stay guarded.
  bool quote_opens_string() const {
    if (text_[pos_] != '"' && text_[pos_] != '\'') return false;
    switch (last_token_char_) {
      case '\n': case '=': case '[': case '{': case ',': case '.': return true;
      default: return false;
    }
  }

  std::optional<ParserHazard> step() {
    size_t length = 0;
    const char32_t c = peek(length);
    switch (state_) {
      case State::normal:
        if (quote_opens_string()) {
          if (at("\"\"\"")) return skip_ascii(3), state_ = State::ml_basic, std::nullopt;
          if (at("'''")) return skip_ascii(3), state_ = State::ml_literal, std::nullopt;
          if (c == '"') state_ = State::basic;
          if (c == '\'') state_ = State::literal;
        }
        if (state_ == State::normal) {
          if (c == '#') state_ = State::comment;
          else if (auto h = hazard(c, length, false)) return h;
          if (c == '\n') last_token_char_ = '\n';
          else if (c != ' ' && c != '\t' && c != '\r') last_token_char_ = c;
        }
        break;
      case State::comment:
        if (c == '\n') state_ = State::normal, last_token_char_ = '\n';
        break;
      case State::basic:
        if (escaped_) escaped_ = false;
        else if (c == '\\') escaped_ = true;
        else if (c == '"' || c == '\n') end_string(c);
        break;
      case State::literal:
        if (c == '\'' || c == '\n') end_string(c);
        break;
      case State::ml_basic:
        if (at("\"\"\"")) return close_multi_line('"'), std::nullopt;
        if (c == '\\') return after_backslash();
        break;
      case State::ml_literal:
        if (at("'''")) return close_multi_line('\''), std::nullopt;
        break;
    }
    advance(c, length);
    return std::nullopt;
  }

  // In a multi-line basic string after '\': toml++ asks "whitespace?" of the
  // escape character, and of every character of a line-ending backslash's
  // whitespace run up to and including the first non-whitespace one.
  std::optional<ParserHazard> after_backslash() {
    skip_ascii(1);
    if (pos_ >= text_.size()) return std::nullopt;
    size_t length = 0;
    char32_t c = peek(length);
    if (auto h = hazard(c, length, true)) return h;
    const bool line_ending = c == ' ' || c == '\t' || c == '\r' || c == '\n';
    if (!line_ending) {
      advance(c, length);  // an ordinary escape (\n, \", \u...)
      return std::nullopt;
    }
    while (pos_ < text_.size()) {
      c = peek(length);
      if (auto h = hazard(c, length, true)) return h;
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n') break;  // left to the string state
      advance(c, length);
    }
    return std::nullopt;
  }

  std::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
  int column_ = 1;
  State state_ = State::normal;
  bool escaped_ = false;  // basic string: the previous character was '\\'
  char32_t last_token_char_ = '\n';  // last non-blank outside strings on this line ('\n' = none)
};

}  // namespace

std::vector<ParserHazard> find_parser_hazards(std::string_view text) { return Scanner(text).run(); }

}  // namespace qerl::dsl::detail
