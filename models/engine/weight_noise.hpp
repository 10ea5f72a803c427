// Gaussian noise on chosen weights of a model, always drawn on a clean copy
// (never accumulated): what AQN (QeRL; REFERENCE.md "AQN") adds to the
// RMSNorm (or Linear) weights of the policy a rollout samples with, and of
// the learner when asked. The schedule of sigma lives with the pipeline
// (actors/aqn.hpp); this holds the targets and draws.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "models/nn/causal_lm.hpp"

namespace qerl::models {

// Which weights get noise: modules of the chosen kinds whose names match
// `targets` and not `exclude` (exact names or "re:<regex>").
struct NoiseTargets {
  std::vector<std::string> targets{"re:.*norm$"};
  std::vector<std::string> exclude;
  bool rmsnorm = true;  // RMSNorm weights
  bool linear = false;  // Linear weights
};

class WeightNoise {
 public:
  // Picks the weights. Throws qerl::Error when nothing matches (the noise
  // would silently do nothing); unmatched() lists patterns that matched no module.
  WeightNoise(const NoiseTargets& targets, CausalLMImpl& lm);

  // Remembers the model's current (clean) values of the targets.
  void capture_clean();

  // Sets every target to clean + N(0, sigma^2) drawn from `seed` (sigma = 0:
  // exactly the clean values) and returns the RMS of (weights now in the
  // model - clean), measured over all target elements.
  double apply(double sigma, uint64_t seed);

  // Puts the clean values back.
  void restore();

  int64_t num_tensors() const { return static_cast<int64_t>(targets_.size()); }
  int64_t num_elements() const;
  const std::vector<std::string>& unmatched() const { return unmatched_; }

 private:
  struct Target {
    std::string name;
    torch::Tensor param;  // the model's parameter (shares storage)
    torch::Tensor clean;  // a copy
  };
  std::vector<Target> targets_;
  std::vector<std::string> unmatched_;
};

}  // namespace qerl::models
