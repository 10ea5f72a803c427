// GSM8K JSONL reader: good lines become problems (blank lines skipped,
// CRLF and comma answers fine), each malformed line is an error that names
// the file and its exact 1-based line number, and the shipped sample file's
// calculator annotations agree with an independent evaluation.
#include "tasks/gsm8k_reader.hpp"

#include <doctest/doctest.h>

#include <regex>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "temp_file.hpp"

using qerl::tasks::Problem;
using qerl::tasks::read_gsm8k_jsonl;
using qerl::tasks::testing::TempFile;

namespace {

const std::string kGood1 = R"({"question": "Q one?", "answer": "2 + 3 = 5\n#### 5"})";
const std::string kGood2 = R"({"answer": "big\n#### 1,234", "question": "Q two?", "id": 7})";

std::string error_reading(const std::string& path) {
  try {
    read_gsm8k_jsonl(path);
  } catch (const qerl::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("good lines are read in order; blank lines and CRLF endings are skipped") {
  const TempFile file("good.jsonl", "\n" + kGood1 + "\r\n   \n\n" + kGood2 + "\n");
  const std::vector<Problem> problems = read_gsm8k_jsonl(file.path());
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].question == "Q one?");
  CHECK(problems[0].answer_text == "2 + 3 = 5\n#### 5");
  CHECK(problems[0].answer == 5);
  CHECK(problems[1].question == "Q two?");
  CHECK(problems[1].answer == 1234);
}

TEST_CASE("each malformed line is an error naming the file and its line number") {
  struct Bad {
    std::string line;
    std::string message;
  };
  const std::vector<Bad> cases = {
      {R"({"question": "Q?", "answer": "#### 5")", "bad JSON"},
      {R"(not json at all)", "bad JSON"},
      {R"(["question", "answer"])", "JSON object"},
      {R"({"answer": "#### 5"})", "missing field \"question\""},
      {R"({"question": "Q?"})", "missing field \"answer\""},
      {R"({"question": 12, "answer": "#### 5"})", "\"question\" is not a string"},
      {R"({"question": "  ", "answer": "#### 5"})", "\"question\" is empty"},
      {R"({"question": "Q?", "answer": "the answer is 5"})", "no final line"},
      {R"({"question": "Q?", "answer": "#### five"})", "not an integer"},
      {R"({"question": "Q?", "answer": "#### 2.5"})", "not an integer"},
  };
  int n = 0;
  for (const Bad& c : cases) {
    CAPTURE(c.line);
    // Good, blank, good, then the bad line: it is line 4 of the file.
    const TempFile file("bad" + std::to_string(n++) + ".jsonl",
                        kGood1 + "\n\n" + kGood2 + "\n" + c.line + "\n" + kGood1 + "\n");
    const std::string error = error_reading(file.path());
    CHECK(error.find(file.path() + ":4: ") == 0);
    CHECK(error.find(c.message) != std::string::npos);
  }
}

TEST_CASE("a JSON syntax error reports the byte within the line") {
  const TempFile file("byte.jsonl", R"({"question": "Q?", "answer": #### 5"})");
  const std::string error = error_reading(file.path());
  CHECK(error.find(":1: bad JSON at byte ") != std::string::npos);
}

TEST_CASE("a missing file and an empty file behave as documented") {
  CHECK_THROWS_WITH_AS(read_gsm8k_jsonl("/nonexistent/qerl/gsm8k.jsonl"),
                       doctest::Contains("/nonexistent/qerl/gsm8k.jsonl: GSM8K file not found"),
                       qerl::Error);
  const TempFile empty("empty.jsonl", "\n\n");
  CHECK(read_gsm8k_jsonl(empty.path()).empty());
}

TEST_CASE("the sample file reads fully and its <<a op b=c>> annotations evaluate") {
  const std::vector<Problem> problems =
      read_gsm8k_jsonl(std::string(QERL_TASKS_TEST_DIR) + "/data/gsm8k_sample.jsonl");
  // The answers as written by hand in the sample (commas included).
  const std::vector<int64_t> expected = {12, 24, 1560, 105, 65, 1500};
  REQUIRE(problems.size() == expected.size());
  // Annotations use one precedence level per expression, so left to right is exact.
  const std::regex annotation(R"(<<([0-9+\-*/]+)=(\d+)>>(\d+))");
  const std::regex term(R"(([+\-*/]?)(\d+))");
  for (size_t i = 0; i < problems.size(); ++i) {
    CAPTURE(problems[i].answer_text);
    CHECK(problems[i].answer == expected[i]);
    int64_t last = -1;
    for (std::sregex_iterator
             a(problems[i].answer_text.begin(), problems[i].answer_text.end(), annotation),
         end;
         a != end; ++a) {
      const std::string expr = (*a)[1];
      int64_t value = 0;
      for (std::sregex_iterator t(expr.begin(), expr.end(), term); t != std::sregex_iterator();
           ++t) {
        const std::string op = (*t)[1];
        const int64_t x = std::stoll((*t)[2]);
        value = op.empty()  ? x
                : op == "+" ? value + x
                : op == "-" ? value - x
                : op == "*" ? value * x
                            : value / x;
      }
      CHECK(value == std::stoll((*a)[2]));
      CHECK((*a)[2] == (*a)[3]);
      last = value;
    }
    CHECK(last == problems[i].answer);  // the last computation is the answer
  }
}
