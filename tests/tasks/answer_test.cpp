// The reward parser on a table of hand-written responses: what a reader of
// the response would call its final answer (commas, signs, "$", trailing
// text, several "####", none, garbage), and the format check.
#include "tasks/answer.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

using qerl::tasks::extract_final_answer;
using qerl::tasks::has_answer_line;
using qerl::tasks::is_correct;

namespace {

struct Case {
  std::string response;
  std::optional<int64_t> expected;
};

}  // namespace

TEST_CASE("extract_final_answer reads the number after the last #### as a person would") {
  const std::vector<Case> cases = {
      {"12 + 15 = 27\n#### 27", 27},
      {"#### 72", 72},
      {"####72", 72},
      {"####   72   ", 72},
      {"####\t72", 72},
      {"#### 1,234", 1234},
      {"#### 1,234,567", 1234567},
      {"#### 12,34", 12},  // not a thousands group: the number ends at the comma
      {"#### 5, because 2 + 3 = 5", 5},
      {"#### -8", -8},
      {"#### +8", 8},
      {"#### - 8", -8},
      {"#### $20", 20},
      {"#### $ 20", 20},
      {"#### -$20", -20},
      {"#### $-20", -20},
      {"#### $1,500.", 1500},
      {"#### 20.", 20},
      {"#### 20.00", 20},
      {"#### 20.5", std::nullopt},  // not an integer answer
      {"#### 20 apples", 20},
      {"#### 20th", 20},
      {"#### 007", 7},
      {"#### -0", 0},
      {"#### 3\n#### 4", 4},  // the last #### wins
      {"#### 3 then #### 9.", 9},
      {"#### 3\n####", std::nullopt},  // the last #### has no number
      {"#### 3\n#### x", std::nullopt},
      {"no marker 42", std::nullopt},
      {"", std::nullopt},
      {"### 42", std::nullopt},
      {"#### the answer is 42", std::nullopt},
      {"####\n42", std::nullopt},  // the number must be on the marker's line
      {"#### --5", std::nullopt},
      {"#### $$5", std::nullopt},
      {"#### 999999999999999999", 999999999999999999},
      {"#### 1000000000000000000", std::nullopt},  // 19 digits: refused, not wrapped
      {"garbage \x01\xff #### 6", 6},
      {"#####5", 5},
  };
  for (const Case& c : cases) {
    CAPTURE(c.response);
    CHECK(extract_final_answer(c.response) == c.expected);
  }
}

TEST_CASE("is_correct is exactly 'the extracted answer equals the reference'") {
  CHECK(is_correct("5 * 4 = 20\n#### 20", 20));
  CHECK(is_correct("#### 1,234", 1234));
  CHECK(is_correct("#### -7.", -7));
  CHECK_FALSE(is_correct("#### 21", 20));
  CHECK_FALSE(is_correct("#### 7", -7));
  CHECK_FALSE(is_correct("20", 20));  // no marker: never correct
  CHECK_FALSE(is_correct("#### 20.5", 20));
}

TEST_CASE("has_answer_line accepts a response whose last non-blank line is an answer line") {
  CHECK(has_answer_line("3 * 5 = 15\n#### 15"));
  CHECK(has_answer_line("3 * 5 = 15\n#### 15\n\n  \n"));
  CHECK(has_answer_line("  #### $1,500.\r\n"));
  CHECK(has_answer_line("#### -3"));
  CHECK_FALSE(has_answer_line("#### 15\nand some more text"));  // answer is not last
  CHECK_FALSE(has_answer_line("The answer is #### 15"));        // not at line start
  CHECK_FALSE(has_answer_line("3 * 5 = 15\n####"));
  CHECK_FALSE(has_answer_line("#### fifteen"));
  CHECK_FALSE(has_answer_line(""));
  CHECK_FALSE(has_answer_line("\n \n"));
}
