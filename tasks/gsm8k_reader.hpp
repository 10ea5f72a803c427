// Reader of GSM8K-style JSONL: one object per line with string fields
// "question" and "answer", the answer ending in a line "#### N" ("1,234" is
// fine). Blank lines are skipped; any other bad line is a qerl::Error naming
// the file and the 1-based line number.
#pragma once

#include <istream>
#include <string>
#include <vector>

#include "tasks/problem.hpp"

namespace qerl::tasks {

std::vector<Problem> read_gsm8k_jsonl(const std::string& path);

// The same, from an open stream; `origin` names it in errors ("<origin>:<line>").
std::vector<Problem> parse_gsm8k_jsonl(std::istream& in, const std::string& origin);

}  // namespace qerl::tasks
