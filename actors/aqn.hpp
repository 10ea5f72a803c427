// AQN, adaptive quantization noise (QeRL; REFERENCE.md "AQN"): Gaussian
// noise on the weights of chosen RMSNorm (or Linear) modules, w' = w + z,
// z ~ N(0, sigma^2), always drawn on a clean copy (never accumulated), with
// sigma = 0 in the first of K equal stages of the run and a geometric decay
// sigma_start -> sigma_end over the others. The draws themselves are
// models::WeightNoise (the sampling engine and the learner hold one).
#pragma once

#include <cstdint>

#include "dsl/pipeline_spec.hpp"
#include "models/engine/weight_noise.hpp"

namespace qerl::actors {

// sigma of RL step `step` (0-based) in a run of `steps`: stage
// j = floor(step * K / steps); j = 0 -> 0; else
// sigma_start * (sigma_end / sigma_start)^((j - 1) / (K - 2)) (K = 2: sigma_start).
// 0 whenever aqn.enabled is false.
double aqn_sigma(const dsl::AqnSpec& aqn, int64_t step, int64_t steps);

// The weights [aqn] names: targets, exclude and layer_types.
models::NoiseTargets aqn_noise_targets(const dsl::AqnSpec& aqn);

}  // namespace qerl::actors
