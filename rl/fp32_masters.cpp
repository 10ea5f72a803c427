// fp32 masters of a low-precision policy (see fp32_masters.hpp).
#include "rl/fp32_masters.hpp"

#include "common/error.hpp"

namespace qerl::rl {

Fp32Masters::Fp32Masters(std::vector<torch::Tensor> params, std::vector<std::string> names)
    : trainable_(std::move(params)), names_(std::move(names)) {
  if (names_.size() != trainable_.size())
    throw Error("Fp32Masters: " + std::to_string(trainable_.size()) + " parameters but " +
                std::to_string(names_.size()) + " names");
  bool low_precision = false;
  for (const auto& p : trainable_) low_precision |= p.scalar_type() != torch::kFloat;
  if (!low_precision) return;
  policy_ = trainable_;
  for (auto& p : trainable_) p = p.detach().to(torch::kFloat).clone();
}

void Fp32Masters::take_grads() {
  for (size_t i = 0; i < policy_.size(); ++i) {
    const torch::Tensor& grad = policy_[i].grad();
    trainable_[i].mutable_grad() = grad.defined() ? grad.to(torch::kFloat) : torch::Tensor();
  }
}

void Fp32Masters::write_back() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < policy_.size(); ++i) policy_[i].copy_(trainable_[i]);
}

void Fp32Masters::zero_grads() {
  for (auto& p : trainable_) p.mutable_grad().reset();
  for (auto& p : policy_) p.mutable_grad().reset();
}

std::map<std::string, torch::Tensor> Fp32Masters::tensors() const {
  std::map<std::string, torch::Tensor> out;
  if (!active()) return out;
  for (size_t i = 0; i < trainable_.size(); ++i) out[names_[i]] = trainable_[i];
  return out;
}

void Fp32Masters::load(const std::map<std::string, torch::Tensor>& tensors, const std::string& where) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < trainable_.size(); ++i) {
    const auto found = tensors.find(names_[i]);
    if (found == tensors.end() || !found->second.sizes().equals(trainable_[i].sizes()))
      throw Error(where + ": no fp32 master " + names_[i] + " of the policy's shape");
    trainable_[i].copy_(found->second);
  }
  write_back();
}

}  // namespace qerl::rl
