// AQN schedule and noise injection (see aqn.hpp). Targets are found by
// module type (models::RMSNorm, models::Linear) and module name; the
// noise generator runs on the parameter's device, seeded per draw, so a
// run's noise is a function of (run.seed, step).
#include "actors/aqn.hpp"

#include <algorithm>
#include <cmath>

#include "common/error.hpp"
#include "common/name_pattern.hpp"
#include "models/generate/sampling.hpp"
#include "models/nn/linear.hpp"
#include "models/nn/rms_norm.hpp"

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

AqnNoise::AqnNoise(const dsl::AqnSpec& aqn, models::CausalLMImpl& lm) {
  NamePatterns targets(aqn.targets, "aqn.targets");
  NamePatterns exclude(aqn.exclude, "aqn.exclude");
  auto wants = [&](const std::string& kind) {
    return std::find(aqn.layer_types.begin(), aqn.layer_types.end(), kind) != aqn.layer_types.end();
  };
  for (const auto& item : lm.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    const std::string& name = item.key();
    const auto& module = item.value();
    const bool is_norm = module->as<models::RMSNormImpl>() != nullptr;
    const bool is_linear = module->as<models::LinearImpl>() != nullptr;
    if (!((is_norm && wants("rmsnorm")) || (is_linear && wants("linear")))) continue;
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

void AqnNoise::capture_clean() {
  torch::NoGradGuard no_grad;
  for (auto& t : targets_) t.clean.copy_(t.param.detach());
}

double AqnNoise::apply(double sigma, uint64_t seed) {
  torch::NoGradGuard no_grad;
  double squares = 0;
  int64_t count = 0;
  for (size_t i = 0; i < targets_.size(); ++i) {
    auto& t = targets_[i];
    if (sigma > 0) {
      auto generator = models::make_generator(t.param.device(), seed + 0x9E3779B97F4A7C15ull * (i + 1));
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

void AqnNoise::restore() { apply(0, 0); }

int64_t AqnNoise::num_elements() const {
  int64_t n = 0;
  for (const auto& t : targets_) n += t.param.numel();
  return n;
}

}  // namespace qerl::actors
