// AQN schedule and the noise targets of [aqn] (see aqn.hpp).
#include "actors/aqn.hpp"

#include <algorithm>
#include <cmath>


namespace qerl::actors {

double aqn_sigma(const dsl::AqnSpec& aqn, int64_t step, int64_t steps) {
  if (!aqn.enabled || steps <= 0) return 0;
  const int64_t K = std::max<int64_t>(1, aqn.num_stages);
  const int64_t stage = std::min<int64_t>(K - 1, step * K / steps);
  if (stage == 0) return 0;
  if (K == 2 || aqn.sigma_start <= 0) return aqn.sigma_start;
  const double t = static_cast<double>(stage - 1) / static_cast<double>(K - 2);
  return aqn.sigma_start * std::pow(aqn.sigma_end / aqn.sigma_start, t);
}

models::NoiseTargets aqn_noise_targets(const dsl::AqnSpec& aqn) {
  const auto has = [&](dsl::AqnLayerType kind) {
    return std::find(aqn.layer_types.begin(), aqn.layer_types.end(), kind) != aqn.layer_types.end();
  };
  return models::NoiseTargets{aqn.targets, aqn.exclude, has(dsl::AqnLayerType::rmsnorm), has(dsl::AqnLayerType::linear)};
}

}  // namespace qerl::actors
