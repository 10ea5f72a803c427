// CounterRng: stream (0, 0) is plain splitmix64 from state 0, so it matches
// the published reference outputs on every standard library; below() and
// in_range() stay in bounds and are close to uniform.
#include "tasks/counter_rng.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

using qerl::tasks::CounterRng;

TEST_CASE("seed 0, stream 0 reproduces the reference splitmix64 sequence") {
  // First outputs of Vigna's splitmix64.c with x = 0.
  CounterRng rng(0, 0);
  CHECK(rng.next() == 0xE220A8397B1DCDAFULL);
  CHECK(rng.next() == 0x6E789E6AA1B965F4ULL);
  CHECK(rng.next() == 0x06C45D188009454FULL);
}

TEST_CASE("below(n) stays in [0, n) and hits every value about equally often") {
  CounterRng rng(123, 4);
  constexpr uint64_t n = 7;
  constexpr int draws = 70000;
  std::vector<int> counts(n, 0);
  for (int i = 0; i < draws; ++i) {
    const uint64_t r = rng.below(n);
    REQUIRE(r < n);
    ++counts[r];
  }
  for (int c : counts) CHECK(std::abs(c - draws / static_cast<int>(n)) < 400);  // ~4.4 sigma
  CounterRng one(5, 5);
  for (int i = 0; i < 100; ++i) CHECK(one.below(1) == 0);
}

TEST_CASE("in_range(lo, hi) covers both ends, negative ranges included") {
  CounterRng rng(9, 9);
  bool saw_lo = false;
  bool saw_hi = false;
  for (int i = 0; i < 2000; ++i) {
    const int64_t r = rng.in_range(-3, 4);
    REQUIRE(r >= -3);
    REQUIRE(r <= 4);
    saw_lo = saw_lo || r == -3;
    saw_hi = saw_hi || r == 4;
  }
  CHECK(saw_lo);
  CHECK(saw_hi);
}

TEST_CASE("neighbouring streams and seeds give unrelated first draws") {
  int equal = 0;
  for (uint64_t k = 0; k < 1000; ++k) {
    const uint64_t a = CounterRng(1, k).next();
    equal += a == CounterRng(1, k + 1).next();
    equal += a == CounterRng(k + 2, 0).next();
  }
  CHECK(equal == 0);
}
