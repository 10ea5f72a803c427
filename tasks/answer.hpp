// The reward parser shared by builtin:arith and GSM8K: the integer after the
// last "####" of a response. Lenient about how the number is written (commas,
// sign, "$", surrounding spaces, trailing text), strict about where it is:
// it must start right after "####" on the same line.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace qerl::tasks {

// The integer that `text` starts with, read as the text after a "####":
// spaces/tabs, then a sign and a "$" in either order (each optional, spaces
// between allowed), then digits. A comma followed by exactly three digits is a
// thousands separator ("1,234"); any other comma ends the number. A decimal
// part of zeros is accepted ("12.00" -> 12); any other decimal part makes the
// answer non-integer (nullopt). Anything else after the number is ignored
// ("20.", "20 apples"). More than 18 digits: nullopt.
std::optional<int64_t> parse_answer_number(std::string_view text);

// The number after the last "####" in `response`; nullopt if there is no
// "####" or no number right after the last one ("#### 5 ####" -> nullopt).
std::optional<int64_t> extract_final_answer(std::string_view response);

// The outcome reward: the final answer exists and equals `answer`.
bool is_correct(std::string_view response, int64_t answer);

// The format reward: the last non-blank line of `response` is an answer line,
// i.e. it starts (after spaces) with "####" and a number can be read from it.
bool has_answer_line(std::string_view response);

}  // namespace qerl::tasks
