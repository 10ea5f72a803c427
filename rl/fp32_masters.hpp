// Mixed-precision training of a bf16 / fp16 policy: the optimizer steps
// fp32 master copies of the parameters, and each step's result is written,
// rounded, into the policy (an AdamW step far below one bf16 ulp of a
// weight would otherwise round away). For an fp32 policy the masters are
// the parameters themselves.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

namespace qerl::rl {

class Fp32Masters {
 public:
  // params / names: the tensors to train (their gradients arrive from the
  // forward) and their names, for checkpoints.
  Fp32Masters(std::vector<torch::Tensor> params, std::vector<std::string> names);

  // True when some parameter is not fp32, so that masters are kept.
  bool active() const { return !policy_.empty(); }
  // What the optimizer updates (fp32).
  const std::vector<torch::Tensor>& trainable() const { return trainable_; }

  // Before the optimizer step: the policy's gradients, as fp32, become the
  // masters' gradients (no-op when not active).
  void take_grads();
  // After the optimizer step: the masters, rounded, into the policy.
  void write_back();
  // Clears every gradient (masters and policy).
  void zero_grads();

  // name -> fp32 master (empty when not active): the checkpoint's master.safetensors.
  std::map<std::string, torch::Tensor> tensors() const;
  // Loads them back (every master by name, with its shape; qerl::Error
  // naming `where` otherwise) and writes them into the policy.
  void load(const std::map<std::string, torch::Tensor>& tensors, const std::string& where);

 private:
  std::vector<torch::Tensor> trainable_;  // fp32: masters when active, else the parameters
  std::vector<torch::Tensor> policy_;     // active: the policy parameter each master feeds
  std::vector<std::string> names_;
};

}  // namespace qerl::rl
