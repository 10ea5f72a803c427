// The CPU bf16 probe behind warn_if_slow_cpu_bf16: a finite, positive
// bf16 / fp32 time ratio, measured once per process (later calls return
// the same value), leaving the global random generator alone.
#include <doctest/doctest.h>

#include <cmath>

#include "actors/policy.hpp"

using namespace qerl;

TEST_CASE("cpu_bf16_matmul_slowdown: a finite positive ratio, measured once, the random stream untouched") {
  torch::manual_seed(7);
  const torch::Tensor expected = torch::rand({4});
  torch::manual_seed(7);
  const double first = actors::cpu_bf16_matmul_slowdown();
  CHECK(torch::equal(torch::rand({4}), expected));
  CHECK(std::isfinite(first));
  CHECK(first > 0);
  CHECK(actors::cpu_bf16_matmul_slowdown() == first);
  MESSAGE("bf16 matmul / fp32 matmul time on this CPU: " << first);
}
