// k1 / k3 KL estimators. k3 is evaluated as expm1(r) - r: exp(r) - 1 - r
// cancels catastrophically for the small r of a policy close to its
// reference, and can then even round below 0; the final clamp_min(0) makes
// the documented k3 >= 0 hold whatever the backend's expm1 rounding.
#include "rl/kl.hpp"

#include "rl/detail/common.hpp"

namespace qerl::rl {

torch::Tensor kl_penalty(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs, KlEstimator estimator) {
  const std::string where = "kl_penalty";
  detail::require_dim(logprobs, 2, where, "logprobs");
  detail::require_floating(logprobs, where, "logprobs");
  detail::require_same_shape(logprobs, ref_logprobs, where, "logprobs", "ref_logprobs");

  const auto lp = logprobs.to(torch::kFloat);
  const auto ref = ref_logprobs.detach().to(torch::kFloat);
  if (estimator == KlEstimator::k1) return lp - ref;
  const auto r = (ref - lp).clamp(-detail::kMaxLogRatio, detail::kMaxLogRatio);
  return (torch::expm1(r) - r).clamp_min(0);
}

}  // namespace qerl::rl
