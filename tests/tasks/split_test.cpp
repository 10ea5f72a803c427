// Train / held-out splits: the two parts are disjoint and together are
// exactly [0, size); the same seed gives the same split and other seeds give
// other ones; seeded_permutation is a permutation that actually mixes.
#include "tasks/split.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "common/error.hpp"

using qerl::tasks::seeded_permutation;
using qerl::tasks::Split;
using qerl::tasks::split_train_heldout;

TEST_CASE("train and held-out are disjoint, sorted, of the asked sizes, and cover everything") {
  for (const auto& [size, heldout] :
       std::vector<std::pair<int64_t, int64_t>>{{10, 3}, {1000, 200}, {7, 0}, {2, 1}}) {
    CAPTURE(size);
    const Split s = split_train_heldout(size, heldout, /*seed=*/11);
    CHECK(static_cast<int64_t>(s.heldout.size()) == heldout);
    CHECK(static_cast<int64_t>(s.train.size()) == size - heldout);
    CHECK(std::is_sorted(s.train.begin(), s.train.end()));
    CHECK(std::is_sorted(s.heldout.begin(), s.heldout.end()));
    std::vector<int64_t> all = s.train;
    all.insert(all.end(), s.heldout.begin(), s.heldout.end());
    std::sort(all.begin(), all.end());
    std::vector<int64_t> want(static_cast<size_t>(size));
    std::iota(want.begin(), want.end(), int64_t{0});
    CHECK(all == want);  // each index exactly once: disjoint and complete
  }
}

TEST_CASE("the split is a function of (size, heldout_size, seed)") {
  const Split a = split_train_heldout(5000, 200, 7);
  const Split b = split_train_heldout(5000, 200, 7);
  CHECK(a.heldout == b.heldout);
  CHECK(a.train == b.train);
  const Split c = split_train_heldout(5000, 200, 8);
  CHECK(a.heldout != c.heldout);
  // Held-out is spread over the source, not a block at one end.
  CHECK(a.heldout.front() < 500);
  CHECK(a.heldout.back() > 4500);
}

TEST_CASE("seeded_permutation is a permutation, deterministic, and mixes positions") {
  const std::vector<int64_t> p = seeded_permutation(1000, 1, 0);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), int64_t{0});
  CHECK(sorted == identity);
  CHECK(p == seeded_permutation(1000, 1, 0));
  CHECK(p != seeded_permutation(1000, 1, 1));  // another stream
  CHECK(p != seeded_permutation(1000, 2, 0));  // another seed
  int fixed_points = 0;
  for (int64_t i = 0; i < 1000; ++i) fixed_points += p[static_cast<size_t>(i)] == i;
  CHECK(fixed_points < 10);  // a random permutation has ~1
  // Over many seeds, where item 0 lands is spread over the whole range.
  std::set<int64_t> first_positions;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const std::vector<int64_t> q = seeded_permutation(10, seed, 0);
    first_positions.insert(std::find(q.begin(), q.end(), 0) - q.begin());
  }
  CHECK(first_positions.size() == 10);
  CHECK(seeded_permutation(0, 1, 0).empty());
}

TEST_CASE("a held-out size that leaves no training data is an error") {
  CHECK_THROWS_WITH_AS(split_train_heldout(10, 10, 0), doctest::Contains("heldout_size = 10"),
                       qerl::Error);
  CHECK_THROWS_AS(split_train_heldout(10, -1, 0), qerl::Error);
  CHECK_THROWS_AS(split_train_heldout(0, 0, 0), qerl::Error);
}
