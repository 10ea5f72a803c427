// Final-answer parsing for rewards and for the GSM8K reader; see answer.hpp
// for the accepted forms. Hand-written scanning (no regex) so the rules stay
// exactly the ones documented and the reward stays cheap per sample.
#include "tasks/answer.hpp"

#include <cstddef>

namespace qerl::tasks {
namespace {

constexpr std::string_view kMarker = "####";
constexpr int kMaxDigits = 18;  // 10^18 - 1 < 2^63

bool is_hspace(char c) { return c == ' ' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// A thousands separator: ',' followed by exactly three digits.
bool is_group_comma(std::string_view text, size_t i) {
  if (text[i] != ',' || i + 3 >= text.size()) return false;
  for (size_t k = 1; k <= 3; ++k) {
    if (!is_digit(text[i + k])) return false;
  }
  return i + 4 == text.size() || !is_digit(text[i + 4]);
}

}  // namespace

std::optional<int64_t> parse_answer_number(std::string_view text) {
  size_t i = 0;
  const auto skip_spaces = [&] {
    while (i < text.size() && is_hspace(text[i])) ++i;
  };
  skip_spaces();
  bool negative = false;
  bool seen_sign = false;
  bool seen_dollar = false;
  for (int k = 0; k < 2 && i < text.size(); ++k) {
    if (!seen_sign && (text[i] == '+' || text[i] == '-')) {
      seen_sign = true;
      negative = text[i] == '-';
    } else if (!seen_dollar && text[i] == '$') {
      seen_dollar = true;
    } else {
      break;
    }
    ++i;
    skip_spaces();
  }
  if (i >= text.size() || !is_digit(text[i])) return std::nullopt;

  int64_t value = 0;
  int digits = 0;
  while (i < text.size()) {
    if (is_digit(text[i])) {
      if (++digits > kMaxDigits) return std::nullopt;
      value = value * 10 + (text[i] - '0');
      ++i;
    } else if (is_group_comma(text, i)) {
      ++i;
    } else {
      break;
    }
  }
  if (i + 1 < text.size() && text[i] == '.' && is_digit(text[i + 1])) {
    for (++i; i < text.size() && is_digit(text[i]); ++i) {
      if (text[i] != '0') return std::nullopt;  // 3.5 is not an integer answer
    }
  }
  return negative ? -value : value;
}

std::optional<int64_t> extract_final_answer(std::string_view response) {
  const size_t at = response.rfind(kMarker);
  if (at == std::string_view::npos) return std::nullopt;
  return parse_answer_number(response.substr(at + kMarker.size()));
}

bool is_correct(std::string_view response, int64_t answer) {
  const std::optional<int64_t> got = extract_final_answer(response);
  return got.has_value() && *got == answer;
}

bool has_answer_line(std::string_view response) {
  // The last line holding anything besides whitespace.
  size_t end = response.size();
  while (end > 0 &&
         (is_hspace(response[end - 1]) || response[end - 1] == '\n' || response[end - 1] == '\r')) {
    --end;
  }
  if (end == 0) return false;
  const size_t newline = response.rfind('\n', end - 1);
  size_t begin = newline == std::string_view::npos ? 0 : newline + 1;
  while (begin < end && is_hspace(response[begin])) ++begin;
  const std::string_view line = response.substr(begin, end - begin);
  if (line.substr(0, kMarker.size()) != kMarker) return false;
  return extract_final_answer(line).has_value();
}

}  // namespace qerl::tasks
