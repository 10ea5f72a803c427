// clip_grad_norm: per-tensor L2 norms (accumulated in float32, one
// multi-tensor kernel per device and dtype) gathered on the first
// gradient's device, combined into one norm, read back once.
// Scaling happens under NoGradGuard, in place on the .grad tensors the
// optimizer will read.
#include "rl/grad_clip.hpp"

#include <cmath>
#include <map>
#include <string>
#include <utility>

#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>

namespace qerl::rl {

double clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  // Gradients grouped by device and dtype: each group's norms and scaling
  // are one multi-tensor kernel (ATen's _foreach ops) rather than one
  // launch per tensor (thousands for the A2.7B shape's LoRA).
  std::map<std::pair<std::string, torch::ScalarType>, std::vector<torch::Tensor>> groups;
  for (const auto& p : parameters) {
    if (p.defined() && p.grad().defined()) groups[{p.grad().device().str(), p.grad().scalar_type()}].push_back(p.grad());
  }
  if (groups.empty()) return 0;

  torch::NoGradGuard no_grad;
  const auto device = groups.begin()->second.front().device();
  std::vector<torch::Tensor> norms;
  for (const auto& [key, grads] : groups)
    for (const auto& norm : at::_foreach_norm(grads, /*ord=*/2, torch::kFloat)) norms.push_back(norm.to(device));
  const double total = torch::stack(norms).norm().item<double>();  // the one host sync

  if (!std::isfinite(total) || max_norm <= 0 || total <= max_norm) return total;
  const double scale = max_norm / (total + 1e-6);
  for (auto& [key, grads] : groups) at::_foreach_mul_(grads, scale);
  return total;
}

}  // namespace qerl::rl
