// Test-side reference for builtin:arith solutions, written independently of
// the generator: parses "a op b = c" lines and the "#### N" line with
// std::regex and recomputes each line. Used to check the generator's output.
#pragma once

#include <cstdint>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace qerl::tasks::testing {

struct WorkedStep {
  int64_t a = 0;
  char op = '?';
  int64_t b = 0;
  int64_t c = 0;
};

struct WorkedSolution {
  std::vector<WorkedStep> steps;
  std::optional<int64_t> final_value;  // the N of "#### N"
  bool well_formed = true;             // every line is a step, and "####" is last
};

inline WorkedSolution parse_worked_solution(const std::string& text) {
  static const std::regex step(R"(^(-?\d+) ([-+*/]) (\d+) = (-?\d+)$)");
  static const std::regex final_line(R"(^#### (-?\d+)$)");
  WorkedSolution out;
  std::istringstream in(text);
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (out.final_value) out.well_formed = false;  // nothing may follow "####"
    if (std::regex_match(line, m, step)) {
      out.steps.push_back({std::stoll(m[1]), m[2].str()[0], std::stoll(m[3]), std::stoll(m[4])});
    } else if (std::regex_match(line, m, final_line)) {
      out.final_value = std::stoll(m[1]);
    } else {
      out.well_formed = false;
    }
  }
  return out;
}

// a op b, or nullopt for division that is not exact (or by zero).
inline std::optional<int64_t> evaluate(const WorkedStep& s) {
  switch (s.op) {
    case '+':
      return s.a + s.b;
    case '-':
      return s.a - s.b;
    case '*':
      return s.a * s.b;
    case '/':
      if (s.b == 0 || s.a % s.b != 0) return std::nullopt;
      return s.a / s.b;
    default:
      return std::nullopt;
  }
}

// All non-negative integers written in `text`, in order.
inline std::vector<int64_t> numbers_in(const std::string& text) {
  static const std::regex number(R"(\d+)");
  std::vector<int64_t> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), number);
       it != std::sregex_iterator(); ++it) {
    out.push_back(std::stoll(it->str()));
  }
  return out;
}

}  // namespace qerl::tasks::testing
