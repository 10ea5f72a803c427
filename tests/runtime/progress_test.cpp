// ProgressLine: step/total, elapsed, an ETA from the mean step time, and the
// key metrics that the step has (absent ones are left out), and the slowest
// stage with its share of the step's stage time.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>

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

TEST_CASE("the progress line names the slowest stage, its time and its share of the step's stage time") {
  ProgressLine line(/*total_steps=*/60, /*out=*/nullptr);
  StepRecord r;
  r.step = 9;  // 10 of 60 done after 50 s: 5 s per step, 50 left
  r.elapsed_s = 50.0;
  r.metrics = {{"critic/rewards/mean", 0.25},
               {"timing_s/data", 0.5},
               {"timing_s/learner", 1.25},
               {"timing_s/rollout", 3.0},
               {"timing_s/reward", 0.25},
               {"val/accuracy", 99}};  // sorts after "timing_s/": not a stage time
  CHECK(line.format(r) == "step 10/60 | 50.0s | ETA 4m10s | reward 0.25 | slowest rollout 3.0s (60%)");
  const auto slowest = slowest_stage(r);
  REQUIRE(slowest);
  CHECK(slowest->stage == "rollout");
  CHECK(slowest->seconds == doctest::Approx(3.0));
  CHECK(slowest->share == doctest::Approx(0.6));
}

TEST_CASE("the slowest stage is the largest of random stage times; none without timings") {
  std::mt19937 rng(19);
  std::uniform_real_distribution<double> seconds(0.01, 20.0);
  for (int trial = 0; trial < 50; ++trial) {
    StepRecord r;
    std::string want;
    double best = -1, total = 0;
    for (int s = 0; s < 6; ++s) {
      const double t = seconds(rng);
      const std::string stage = "stage" + std::to_string(s);
      r.metrics["timing_s/" + stage] = t;
      total += t;
      if (t > best) best = t, want = stage;
    }
    r.metrics["timing_s/broken"] = std::nan("");  // a non-finite time is not a stage's time
    const auto slowest = slowest_stage(r);
    REQUIRE(slowest);
    CHECK(slowest->stage == want);
    CHECK(slowest->share == doctest::Approx(best / total));
  }
  StepRecord none;
  none.metrics = {{"timing_sx", 5}, {"reward", 1}};
  CHECK_FALSE(slowest_stage(none));
  ProgressLine line(/*total_steps=*/4, /*out=*/nullptr, {});
  none.step = 1, none.elapsed_s = 10;
  CHECK(line.format(none) == "step 2/4 | 10.0s | ETA 10.0s");
}
