// lr_at: warm-up then decay, in plain doubles (no tensors). Steps past
// total_steps keep the final rate (0 for linear and cosine) rather than
// extrapolating below 0.
#include "rl/lr_schedule.hpp"

#include <algorithm>
#include <cmath>

#include "common/error.hpp"

namespace qerl::rl {

namespace {
constexpr double kPi = 3.14159265358979323846;
}  // namespace

double lr_at(LrSchedule schedule, double base_lr, int64_t step, int64_t warmup_steps, int64_t total_steps) {
  if (step < 0 || warmup_steps < 0 || total_steps < 0) {
    throw Error("lr_at: step (" + std::to_string(step) + "), warmup_steps (" + std::to_string(warmup_steps) +
                ") and total_steps (" + std::to_string(total_steps) + ") must be >= 0");
  }
  if (step < warmup_steps) return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  const double decay_steps = static_cast<double>(total_steps - warmup_steps);
  const double progress =
      decay_steps <= 0 ? 1.0 : std::clamp(static_cast<double>(step - warmup_steps) / decay_steps, 0.0, 1.0);
  switch (schedule) {
    case LrSchedule::constant:
      return base_lr;
    case LrSchedule::linear:
      return base_lr * (1 - progress);
    case LrSchedule::cosine:
      return base_lr * 0.5 * (1 + std::cos(kPi * progress));
  }
  return base_lr;
}

}  // namespace qerl::rl
