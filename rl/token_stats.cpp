// token_logprobs / token_entropy over [B, S, V] logits. The gather-minus-
// logsumexp form of the log-prob saves only [B, S] for backward (the logits
// themselves are alive anyway), where log_softmax would keep its [B, S, V]
// output.
#include "rl/token_stats.hpp"

#include "rl/detail/common.hpp"

namespace qerl::rl {

torch::Tensor token_logprobs(const torch::Tensor& logits, const torch::Tensor& targets) {
  const std::string where = "token_logprobs";
  detail::require_dim(logits, 3, where, "logits");
  detail::require_floating(logits, where, "logits");
  detail::require_dim(targets, 2, where, "targets");
  detail::require(targets.size(0) == logits.size(0) && targets.size(1) == logits.size(1), where,
                  "targets " + detail::shape_of(targets) + " do not match logits " + detail::shape_of(logits));
  detail::require(targets.scalar_type() == torch::kLong, where, "targets must be int64");

  const auto l = logits.to(torch::kFloat);                                    // no-op for float32 logits
  const auto target_logit = l.gather(-1, targets.unsqueeze(-1)).squeeze(-1);  // [B, S]
  return target_logit - l.logsumexp(-1);
}

torch::Tensor token_entropy(const torch::Tensor& logits) {
  const std::string where = "token_entropy";
  detail::require_dim(logits, 3, where, "logits");
  detail::require_floating(logits, where, "logits");

  const auto l = logits.to(torch::kFloat);
  const auto probs = torch::softmax(l, -1);  // [B, S, V] float32
  return l.logsumexp(-1) - (probs * l).sum(-1);
}

}  // namespace qerl::rl
