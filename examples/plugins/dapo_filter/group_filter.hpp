// Which prompt groups carry a learning signal. GRPO normalises rewards
// within each group of samples of one prompt, so a group whose rewards are
// all equal has zero advantage everywhere: it adds tokens to the loss's
// denominator and nothing to its gradient. DAPO's dynamic sampling drops
// such groups; this is the selection, kept free of tensors so that it can
// be checked on its own.
#pragma once

#include <cstdint>
#include <vector>

namespace qerl::examples {

struct GroupSelection {
  std::vector<int64_t> kept_rows;  // ascending row indices of the groups kept
  int64_t groups = 0;              // distinct group ids in the batch
  int64_t uniform_groups = 0;      // groups whose rewards span at most the tolerance
};

// Row i belongs to group group_ids[i] and earned rewards[i]; groups need not
// be contiguous. A group is uniform when max - min of its rewards is at most
// `tolerance` (>= 0); the rows of every other group are kept, in order.
// Throws qerl::Error when the two lists differ in length.
GroupSelection select_informative_groups(const std::vector<int64_t>& group_ids,
                                         const std::vector<double>& rewards, double tolerance);

}  // namespace qerl::examples
