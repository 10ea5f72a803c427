// open_prompt_source: a builtin:arith spec gives a source whose get(i) is the
// generator's problem i and whose size is the configured one; a .jsonl path
// gives the file's problems in order; bad specs and indices are errors.
#include "tasks/prompt_source.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "common/error.hpp"
#include "tasks/arith_generator.hpp"
#include "tasks/gsm8k_reader.hpp"
#include "temp_file.hpp"

using qerl::tasks::open_prompt_source;
using qerl::tasks::PromptSource;

TEST_CASE("a builtin:arith source is the generator, cut to the configured size") {
  const std::unique_ptr<PromptSource> source =
      open_prompt_source("builtin:arith?size=500&seed=3&steps=1-3");
  CHECK(source->size() == 500);
  const auto spec = qerl::tasks::parse_arith_spec("builtin:arith?size=500&seed=3&steps=1-3");
  for (int64_t i : {0, 1, 250, 499}) {
    CHECK(source->get(i) == qerl::tasks::generate_arith_problem(spec.options, /*seed=*/3, i));
  }
  CHECK(open_prompt_source("builtin:arith")->size() == 100000);
  CHECK_THROWS_WITH_AS(source->get(500), doctest::Contains("outside [0, 500)"), qerl::Error);
  CHECK_THROWS_WITH_AS(source->get(-1), doctest::Contains("outside [0, 500)"), qerl::Error);
}

TEST_CASE("a .jsonl source holds the file's problems in file order") {
  const std::string path = std::string(QERL_TASKS_TEST_DIR) + "/data/gsm8k_sample.jsonl";
  const std::unique_ptr<PromptSource> source = open_prompt_source(path);
  const auto problems = qerl::tasks::read_gsm8k_jsonl(path);
  REQUIRE(source->size() == static_cast<int64_t>(problems.size()));
  for (int64_t i = 0; i < source->size(); ++i)
    CHECK(source->get(i) == problems[static_cast<size_t>(i)]);
  CHECK(source->origin() == path);
}

TEST_CASE("unknown builtins, bad options and empty files are errors naming the source") {
  CHECK_THROWS_WITH_AS(open_prompt_source("builtin:algebra?steps=2"),
                       doctest::Contains("unknown builtin task 'algebra'"), qerl::Error);
  CHECK_THROWS_WITH_AS(open_prompt_source("builtin:arith?stepz=2"),
                       doctest::Contains("unknown option 'stepz'"), qerl::Error);
  const qerl::tasks::testing::TempFile empty("empty_source.jsonl", "\n");
  CHECK_THROWS_WITH_AS(open_prompt_source(empty.path()), doctest::Contains("has no problems"),
                       qerl::Error);
}
