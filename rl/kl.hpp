// Per-token KL estimators of pi_theta against the reference policy, used as
// the optional KL loss term (verl's kl_loss_type). k1 is the plain log-ratio
// (unbiased, can be negative); k3 = exp(r) - r - 1 is non-negative and lower
// variance (Schulman's "Approximating KL divergence").
#pragma once

#include <string>

#include <torch/types.h>

#include "rl/settings.hpp"

namespace qerl::rl {

// logprobs, ref_logprobs: [B, S] floating -> [B, S] float32, differentiable in logprobs:
//   k1 = logprobs - ref_logprobs
//   k3 = exp(r) - r - 1, r = clamp(ref_logprobs - logprobs, -20, 20) (>= 0; computed
//        as expm1(r) - r for accuracy near r = 0; the clamp zeroes the gradient beyond it).
// Aggregate with aggregate() over the response mask. No host sync.
torch::Tensor kl_penalty(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs, KlEstimator estimator);

}  // namespace qerl::rl
