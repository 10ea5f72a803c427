// Global gradient-norm clipping for the learner's optimizer step, returning
// the pre-clip norm as the grad_norm metric. A non-finite norm leaves the
// gradients untouched so that the caller can skip the step (and log why)
// instead of writing NaNs into the weights.
#pragma once

#include <vector>

#include <torch/types.h>

namespace qerl::rl {

// parameters: any tensors (any float dtype, any devices); those without a
// defined grad are ignored. Computes the total L2 norm of all gradients (in
// float32) and, when max_norm > 0 and the norm exceeds it, scales every
// gradient in place by max_norm / (norm + 1e-6). Returns the norm BEFORE
// clipping (0 when no gradient is defined). One host sync, for the returned
// double. A non-finite norm is returned as is and gradients are left untouched.
double clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm);

}  // namespace qerl::rl
