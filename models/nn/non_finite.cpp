// NaN / infinity findings (see non_finite.hpp): isfinite per tensor, counted
// only when something is off, so a clean model costs one pass and no text.
#include "models/nn/non_finite.hpp"

namespace qerl::models {

std::optional<std::string> non_finite_values(const std::string& name, const torch::Tensor& tensor) {
  if (!tensor.defined() || !tensor.is_floating_point()) return std::nullopt;
  torch::NoGradGuard no_grad;
  const int64_t finite = torch::isfinite(tensor).sum().item<int64_t>();
  if (finite == tensor.numel()) return std::nullopt;
  return "tensor " + name + ": " + std::to_string(tensor.numel() - finite) + " of " + std::to_string(tensor.numel()) +
         " values are NaN or infinite";
}

std::optional<std::string> find_non_finite(const TensorMap& tensors, const std::string& name_prefix) {
  for (const auto& [name, tensor] : tensors)
    if (auto finding = non_finite_values(name_prefix + name, tensor)) return finding;
  return std::nullopt;
}

std::optional<std::string> find_non_finite_parameter(torch::nn::Module& module) {
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    if (auto finding = non_finite_values(item.key(), item.value())) return finding;
  return std::nullopt;
}

}  // namespace qerl::models
