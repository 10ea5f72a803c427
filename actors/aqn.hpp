// AQN, adaptive quantization noise (QeRL; REFERENCE.md "AQN"): Gaussian
// noise on the weights of chosen RMSNorm (or Linear) modules, w' = w + z,
// z ~ N(0, sigma^2), always drawn on a clean copy (never accumulated), with
// sigma = 0 in the first of K equal stages of the run and a geometric decay
// sigma_start -> sigma_end over the others.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "dsl/pipeline_spec.hpp"
#include "models/nn/causal_lm.hpp"

namespace qerl::actors {

// sigma of RL step `step` (0-based) in a run of `steps`: stage
// j = floor(step * K / steps); j = 0 -> 0; else
// sigma_start * (sigma_end / sigma_start)^((j - 1) / (K - 2)) (K = 2: sigma_start).
// 0 whenever aqn.enabled is false.
double aqn_sigma(const dsl::AqnSpec& aqn, int64_t step, int64_t steps);

// The noised parameters of one model and their clean values.
class AqnNoise {
 public:
  // Picks the weights of modules of aqn.layer_types whose names match
  // aqn.targets and not aqn.exclude. Throws qerl::Error when nothing matches
  // (the noise would silently do nothing); unmatched() lists patterns that
  // matched no module.
  AqnNoise(const dsl::AqnSpec& aqn, models::CausalLMImpl& lm);

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

}  // namespace qerl::actors
