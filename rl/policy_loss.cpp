// clipped_policy_loss: the per-token PPO/DAPO surrogate and its metrics.
// The max of the two terms is the pessimistic bound: where clipping binds,
// the clipped term wins and (being constant in logprobs) passes no gradient.
#include "rl/policy_loss.hpp"

#include "rl/detail/common.hpp"

namespace qerl::rl {

PolicyLossTerms clipped_policy_loss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                                    const torch::Tensor& advantages, const torch::Tensor& mask, double clip_low,
                                    double clip_high, LossAgg agg, double normalizer) {
  const std::string where = "clipped_policy_loss";
  detail::require_dim(logprobs, 2, where, "logprobs");
  detail::require_floating(logprobs, where, "logprobs");
  detail::require_same_shape(logprobs, old_logprobs, where, "logprobs", "old_logprobs");
  detail::require_same_shape(logprobs, mask, where, "logprobs", "mask");
  detail::require(advantages.defined() && (advantages.dim() == 1 || advantages.dim() == 2), where,
                  "advantages must be [B] or [B, S]");
  detail::require(
      advantages.size(0) == logprobs.size(0) && (advantages.dim() == 1 || advantages.size(1) == logprobs.size(1)),
      where, "advantages " + detail::shape_of(advantages) + " do not match logprobs " + detail::shape_of(logprobs));
  detail::require(
      clip_low >= 0 && clip_low < 1 && clip_high >= 0, where,
      "need 0 <= clip_low < 1 and clip_high >= 0, got " + std::to_string(clip_low) + ", " + std::to_string(clip_high));

  const auto old = old_logprobs.detach().to(torch::kFloat);
  const auto adv =
      (advantages.dim() == 1 ? advantages.unsqueeze(1) : advantages).detach().to(torch::kFloat);  // [B, 1] or [B, S]
  const auto log_ratio = (logprobs.to(torch::kFloat) - old).clamp(-detail::kMaxLogRatio, detail::kMaxLogRatio);
  const auto ratio = log_ratio.exp();                                    // [B, S]
  const auto unclipped = -adv * ratio;                                   // [B, S]
  const auto clipped = -adv * ratio.clamp(1 - clip_low, 1 + clip_high);  // [B, S]
  const auto pg_loss = torch::maximum(unclipped, clipped);               // [B, S]

  PolicyLossTerms terms;
  terms.loss = aggregate(pg_loss, mask, agg, normalizer);
  torch::NoGradGuard no_grad;
  terms.clipfrac = masked_mean(clipped.detach() > unclipped.detach(), mask);
  terms.approx_kl = masked_mean(old - logprobs.detach().to(torch::kFloat), mask);
  return terms;
}

}  // namespace qerl::rl
