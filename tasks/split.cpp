// Seeded permutations and the train / held-out split. The split draws from
// its own stream domain so that it never coincides with an epoch order of
// the same seed (epoch_cursor.cpp uses another domain).
#include "tasks/split.hpp"

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>

#include "common/error.hpp"
#include "tasks/counter_rng.hpp"

namespace qerl::tasks {
namespace {

constexpr uint64_t kSplitDomain = 0x73706c6974ULL;  // "split"

}  // namespace

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed, uint64_t stream) {
  if (n < 0) throw Error("seeded_permutation: negative size " + std::to_string(n));
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  CounterRng rng(seed, stream);
  for (size_t i = order.size(); i > 1; --i) {
    std::swap(order[i - 1], order[rng.below(i)]);
  }
  return order;
}

Split split_train_heldout(int64_t size, int64_t heldout_size, uint64_t seed) {
  if (heldout_size < 0 || heldout_size >= size) {
    throw Error("data.heldout_size = " + std::to_string(heldout_size) + " must be in [0, " +
                std::to_string(size) + ") for a source of " + std::to_string(size) +
                " problems (training needs at least one)");
  }
  const std::vector<int64_t> order = seeded_permutation(size, seed ^ kSplitDomain, 0);
  const auto cut = order.begin() + heldout_size;
  Split split{std::vector<int64_t>(cut, order.end()), std::vector<int64_t>(order.begin(), cut)};
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.heldout.begin(), split.heldout.end());
  return split;
}

}  // namespace qerl::tasks
