// Train / held-out split of a prompt source's indices by a seeded shuffle:
// held-out = the first `heldout_size` entries of a permutation of
// [0, size), train = the rest. Both lists are returned sorted ascending, so
// an unshuffled pass reads the training prompts in source order.
#pragma once

#include <cstdint>
#include <vector>

namespace qerl::tasks {

// A permutation of [0, n) (Fisher-Yates over CounterRng(seed, stream)).
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed, uint64_t stream);

struct Split {
  std::vector<int64_t> train;
  std::vector<int64_t> heldout;
};

// Throws qerl::Error unless 0 <= heldout_size < size (train must not be empty).
Split split_train_heldout(int64_t size, int64_t heldout_size, uint64_t seed);

}  // namespace qerl::tasks
