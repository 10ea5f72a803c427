// Per-token statistics of the policy's next-token distribution: the log-prob
// of the sampled token (the input to every PPO ratio and KL term) and the
// entropy (an exploration metric and optional bonus). Both are computed in
// float32 whatever the logits' dtype.
#pragma once

#include <torch/types.h>

namespace qerl::rl {

// logits: [B, S, V] any floating dtype; targets: [B, S] int64 in [0, V).
// Returns [B, S] float32 log softmax(logits)[target], computed as
// logits[target] - logsumexp(logits): no [B, S, V] log-softmax is kept, and
// float32 logits are not copied (other dtypes get one float32 copy).
// Differentiable in logits. No host sync.
torch::Tensor token_logprobs(const torch::Tensor& logits, const torch::Tensor& targets);

// logits: [B, S, V] any floating dtype (finite) -> [B, S] float32 entropy of
// softmax(logits): logsumexp(l) - sum(softmax(l) * l). Differentiable. No host sync.
torch::Tensor token_entropy(const torch::Tensor& logits);

}  // namespace qerl::rl
