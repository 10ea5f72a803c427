// PPO clipped surrogate with DAPO's decoupled clip range (clip_low for ratios
// below 1, clip_high above), plus the two metrics that come with it. The
// per-token loss is aggregated by loss_agg's aggregate(), so the same function
// serves GRPO (seq-mean-token-mean) and DAPO (token-mean).
#pragma once

#include <torch/types.h>

#include "rl/loss_agg.hpp"

namespace qerl::rl {

struct PolicyLossTerms {
  torch::Tensor loss;       // 0-dim float32, differentiable: aggregate(pg_loss, mask, agg, normalizer)
  torch::Tensor clipfrac;   // 0-dim float32 detached: masked mean of (clipped term > unclipped term)
  torch::Tensor approx_kl;  // 0-dim float32 detached: masked mean of (old_logprobs - logprobs) (verl's actor/ppo_kl)
};

// logprobs: [B, S] float32 (differentiable); old_logprobs: [B, S]; advantages:
// [B] (broadcast to every token of the row) or [B, S]; mask: [B, S] bool or 0/1.
//   ratio = exp(clamp(logprobs - old_logprobs, -20, 20))
//   pg    = max(-A * ratio, -A * clamp(ratio, 1 - clip_low, 1 + clip_high))
// The log-ratio is clamped to [-20, 20] before exp so that a stale or padded
// token cannot overflow to inf (e^20 ~ 4.9e8 is already far outside any clip
// range); past the clamp the gradient is 0, as it is for clipped tokens.
// Gradients reach logprobs only (old_logprobs and advantages are constants).
// No host sync.
PolicyLossTerms clipped_policy_loss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                                    const torch::Tensor& advantages, const torch::Tensor& mask, double clip_low,
                                    double clip_high, LossAgg agg, double normalizer = 0);

}  // namespace qerl::rl
