// clip_grad_norm: per-tensor L2 norms (accumulated in float32) gathered on
// the first gradient's device, combined into one norm, read back once.
// Scaling happens under NoGradGuard, in place on the .grad tensors the
// optimizer will read.
#include "rl/grad_clip.hpp"

#include <cmath>

namespace qerl::rl {

double clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters) {
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return 0;

  torch::NoGradGuard no_grad;
  const auto device = grads.front().device();
  std::vector<torch::Tensor> norms;
  norms.reserve(grads.size());
  for (const auto& g : grads) {
    const auto norm = torch::linalg_vector_norm(g, /*ord=*/2, /*dim=*/c10::nullopt, /*keepdim=*/false, torch::kFloat);
    norms.push_back(norm.to(device));
  }
  const double total = torch::stack(norms).norm().item<double>();  // the one host sync

  if (!std::isfinite(total) || max_norm <= 0 || total <= max_norm) return total;
  const double scale = max_norm / (total + 1e-6);
  for (auto& g : grads) g.mul_(scale);
  return total;
}

}  // namespace qerl::rl
