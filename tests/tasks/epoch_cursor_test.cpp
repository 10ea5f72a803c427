// EpochCursor: each epoch hands out every training item exactly once, epochs
// are shuffled differently (or not at all when shuffle is off), and a cursor
// restored from a saved (epoch, offset) continues with the same sequence as
// the one it was saved from, including across epoch boundaries.
#include "tasks/epoch_cursor.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "common/error.hpp"
#include "tasks/split.hpp"

using qerl::tasks::CursorPosition;
using qerl::tasks::EpochCursor;

namespace {

std::vector<int64_t> sorted(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST_CASE("every epoch covers every training item exactly once") {
  const std::vector<int64_t> train = qerl::tasks::split_train_heldout(300, 40, 5).train;
  EpochCursor cursor(train, /*seed=*/17, /*shuffle=*/true);
  std::vector<std::vector<int64_t>> epochs;
  for (int e = 0; e < 4; ++e) {
    CHECK(cursor.position() == CursorPosition{e, 0});
    epochs.push_back(cursor.take(cursor.epoch_size()));
    CHECK(sorted(epochs.back()) == train);  // train is sorted already
  }
  CHECK(epochs[0] != epochs[1]);  // reshuffled each epoch
  CHECK(epochs[1] != epochs[2]);
  CHECK(epochs[0] != train);  // and actually shuffled
  CHECK(EpochCursor(train, 17, true).epoch_order(2) == epochs[2]);
}

TEST_CASE("without shuffle every epoch is the given order") {
  const std::vector<int64_t> items = {5, 3, 9, 1};
  EpochCursor cursor(items, 17, /*shuffle=*/false);
  CHECK(cursor.take(12) == std::vector<int64_t>{5, 3, 9, 1, 5, 3, 9, 1, 5, 3, 9, 1});
  CHECK(cursor.position() == CursorPosition{3, 0});
}

TEST_CASE("a restored cursor continues exactly like the original") {
  const std::vector<int64_t> train = qerl::tasks::split_train_heldout(50, 7, 1).train;  // 43 items
  for (int64_t saved_after : {0, 1, 20, 42, 43, 44, 100, 129}) {
    CAPTURE(saved_after);
    EpochCursor original(train, 99, true);
    original.take(saved_after);
    const CursorPosition saved = original.position();
    CHECK(saved == CursorPosition{saved_after / 43, saved_after % 43});
    const std::vector<int64_t> expected = original.take(100);

    EpochCursor resumed(train, 99, true);  // fresh, as after a restart
    resumed.take(5);                       // wherever it was, restore wins
    resumed.restore(saved);
    CHECK(resumed.take(100) == expected);
  }
}

TEST_CASE("positions outside the epoch and empty item lists are errors") {
  EpochCursor cursor({1, 2, 3}, 0, true);
  CHECK_THROWS_WITH_AS(cursor.restore({0, 3}), doctest::Contains("offset 3"), qerl::Error);
  CHECK_THROWS_AS(cursor.restore({-1, 0}), qerl::Error);
  CHECK_THROWS_AS(cursor.restore({0, -1}), qerl::Error);
  CHECK_THROWS_AS(EpochCursor({}, 0, true), qerl::Error);
  CHECK(cursor.position() == CursorPosition{0, 0});  // failed restores change nothing
}
