// Noise on a model's weights (see weight_noise.hpp). Targets are found by
// module type (RMSNorm, Linear) and module name; the generator runs on the
// parameter's device, seeded per draw, so a run's noise is a function of
// the seed its caller derives (for AQN: run.seed and step).
#include "models/engine/weight_noise.hpp"

#include <cmath>

#include "common/error.hpp"
#include "common/name_pattern.hpp"
#include "models/generate/sampling.hpp"
#include "models/nn/linear.hpp"
#include "models/nn/rms_norm.hpp"

namespace qerl::models {

WeightNoise::WeightNoise(const NoiseTargets& aqn, CausalLMImpl& lm) {
  NamePatterns targets(aqn.targets, "aqn.targets");
  NamePatterns exclude(aqn.exclude, "aqn.exclude");
  for (const auto& item : lm.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    const std::string& name = item.key();
    const auto& module = item.value();
    const bool is_norm = module->as<RMSNormImpl>() != nullptr;
    const bool is_linear = module->as<LinearImpl>() != nullptr;
    if (!((is_norm && aqn.rmsnorm) || (is_linear && aqn.linear))) continue;
    if (!targets.matches(name) || exclude.matches(name)) continue;
    const auto own = module->named_parameters(/*recurse=*/false);  // the dict must outlive `weight`
    const auto* weight = own.find("weight");
    if (weight == nullptr) continue;
    targets_.push_back({name + ".weight", *weight, weight->detach().clone()});
  }
  unmatched_ = targets.unmatched();
  if (targets_.empty())
    throw Error("aqn: no module of layer_types matches aqn.targets (minus aqn.exclude): the noise would do nothing");
}

void WeightNoise::capture_clean() {
  torch::NoGradGuard no_grad;
  for (auto& t : targets_) t.clean.copy_(t.param.detach());
}

double WeightNoise::apply(double sigma, uint64_t seed) {
  torch::NoGradGuard no_grad;
  double squares = 0;
  int64_t count = 0;
  for (size_t i = 0; i < targets_.size(); ++i) {
    auto& t = targets_[i];
    if (sigma > 0) {
      auto generator = make_generator(t.param.device(), seed + 0x9E3779B97F4A7C15ull * (i + 1));
      const auto noise = torch::randn(t.param.sizes(), generator, t.clean.options().dtype(torch::kFloat));
      t.param.copy_(t.clean.to(torch::kFloat) + noise * sigma);
    } else {
      t.param.copy_(t.clean);
    }
    // Measured from the values the model now holds (in its dtype), not from the draw.
    squares += (t.param.to(torch::kDouble) - t.clean.to(torch::kDouble)).square().sum().item<double>();
    count += t.param.numel();
  }
  return count > 0 ? std::sqrt(squares / static_cast<double>(count)) : 0.0;
}

void WeightNoise::restore() { apply(0, 0); }

int64_t WeightNoise::num_elements() const {
  int64_t n = 0;
  for (const auto& t : targets_) n += t.param.numel();
  return n;
}

}  // namespace qerl::models
