// Loss aggregation: how a per-token loss matrix becomes the scalar that is
// back-propagated (verl's loss_agg_mode). The explicit normalizer lets
// gradient accumulation over micro-batches sum to exactly the loss of the
// whole mini-batch; masked_mean is the plain average used for metrics.
#pragma once

#include <string>

#include <torch/types.h>

#include "rl/settings.hpp"

namespace qerl::rl {

// values: [B, S] floating; mask: [B, S] bool or 0/1 floating (1 = response token
// counted). Masked-out entries are selected away, never multiplied, so padding
// holding inf/NaN cannot leak into the result or its gradient.
//   token-mean:          sum(values * mask) / count_tokens
//   seq-mean-token-mean: sum over rows with >= 1 token of (row masked mean) / count_rows
//   seq-mean-token-sum:  sum over rows of (row masked sum) / count_rows
// count_rows counts rows with at least one token (fully masked rows are
// padding, they do not dilute the mean). normalizer == 0 uses this batch's own
// count; normalizer > 0 divides by it instead (the whole mini-batch's token
// count for token-mean, its row count for the seq-mean modes), so that
// micro-batch losses sum to the mini-batch loss. A count of 0 gives 0, not NaN.
// Returns a 0-dim float32 tensor, differentiable in values. No host sync.
torch::Tensor aggregate(const torch::Tensor& values, const torch::Tensor& mask, LossAgg agg, double normalizer = 0);

// x: [...] any dtype (bool counts as 0/1), mask: same shape. Returns the 0-dim
// float32 sum(x * mask) / max(sum(mask), 1), for metrics.
torch::Tensor masked_mean(const torch::Tensor& x, const torch::Tensor& mask);

}  // namespace qerl::rl
