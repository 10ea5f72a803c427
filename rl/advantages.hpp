// Group-relative advantages for GRPO (and Dr.GRPO): every response is scored
// against the other responses to the same prompt, so no value network is
// needed. The result is per response; callers broadcast it to the response's
// tokens (clipped_policy_loss accepts [B] directly).
#pragma once

#include <torch/types.h>

namespace qerl::rl {

// rewards: [B] floating (computed in float32); group_ids: [B] int64 on the same
// device (responses to one prompt share an id; ids need not be contiguous or
// sorted). Returns [B] float32:
//   GRPO (norm_by_std):     A_i = (r_i - mean_g) / (std_g + eps), std unbiased (Bessel, as torch.std);
//   Dr.GRPO (!norm_by_std): A_i = r_i - mean_g.
// A group of one response gets advantage 0 (torch.std would be NaN there).
// No host synchronization.
torch::Tensor group_advantages(const torch::Tensor& rewards, const torch::Tensor& group_ids, bool norm_by_std,
                               double eps = 1e-6);

}  // namespace qerl::rl
