// One task problem as every prompt source yields it: the question shown to the
// model, the GSM8K-style worked solution (intermediate steps, then a last line
// "#### N") used for SFT targets, and N itself, which rewards compare against.
#pragma once

#include <cstdint>
#include <string>

namespace qerl::tasks {

struct Problem {
  std::string question;
  std::string answer_text;  // worked steps, ending in the line "#### <answer>"
  int64_t answer = 0;
};

inline bool operator==(const Problem& a, const Problem& b) {
  return a.question == b.question && a.answer_text == b.answer_text && a.answer == b.answer;
}
inline bool operator!=(const Problem& a, const Problem& b) { return !(a == b); }

}  // namespace qerl::tasks
