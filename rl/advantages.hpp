// Group-relative advantages for GRPO (and Dr.GRPO): every response is scored
// against the other responses to the same prompt, so no value network is
// needed. The result is per response; callers broadcast it to the response's
// tokens (clipped_policy_loss accepts [B] directly).
#pragma once

#include <cstdint>
#include <vector>

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

// Share of prompt groups in which no response / every response is correct.
// Under a correctness reward neither kind carries an advantage signal, and
// 1 - solve_none is the batch's pass@G. group_ids and correct: one entry per
// response (sizes must match; empty gives 0 and 0).
struct GroupOutcomes {
  double solve_none = 0;
  double solve_all = 0;
};
GroupOutcomes group_outcomes(const std::vector<int64_t>& group_ids, const std::vector<uint8_t>& correct);

}  // namespace qerl::rl
