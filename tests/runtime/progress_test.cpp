// ProgressLine: step/total, elapsed, an ETA from the mean step time, and the
// key metrics that the step has (absent ones are left out).
#include <doctest/doctest.h>

#include <cstdio>

#include "runtime/progress.hpp"

using namespace qerl::runtime;

TEST_CASE("the progress line shows step, elapsed, ETA and the key metrics present") {
  ProgressLine line(/*total_steps=*/10, /*out=*/nullptr);
  StepRecord r;
  r.step = 3;  // 4 of 10 done after 20 s: 5 s per step, 6 left
  r.elapsed_s = 20.0;
  r.metrics = {{"critic/rewards/mean", 0.53125}, {"rollout/tokens_per_s", 12345.6}, {"other", 1}};
  CHECK(line.format(r) == "step 4/10 | 20.0s | ETA 30.0s | reward 0.5312 | tok/s 12346");
  r.step = 9;
  r.elapsed_s = 3725;
  r.metrics.clear();
  CHECK(line.format(r) == "step 10/10 | 1h02m");
  CHECK(format_duration(125) == "2m05s");
}

TEST_CASE("a resumed run shows the true step and an ETA from the steps it ran itself") {
  ProgressLine line(/*total_steps=*/10, /*out=*/nullptr, {});
  line.start_at(6);
  StepRecord r;
  r.step = 7;  // 8 of 10 done, 2 of them by this process in 20 s: 10 s per step, 2 left
  r.elapsed_s = 20.0;
  CHECK(line.format(r) == "step 8/10 | 20.0s | ETA 20.0s");
}

TEST_CASE("on a non-terminal stream every update is one full line") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  ProgressLine line(2, f, {{"reward", "r"}});
  StepRecord r;
  r.metrics["r"] = 1;
  line.update(r);
  r.step = 1;
  line.update(r);
  line.finish();
  std::rewind(f);
  char buf[256] = {};
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  CHECK(std::string(buf, n) == "step 1/2 | 0.0s | ETA 0.0s | reward 1\nstep 2/2 | 0.0s | reward 1\n");
}
