// Learning-rate schedules for the learner's optimizer: linear warm-up, then
// constant, linear decay to 0, or cosine decay to 0. A pure function of the
// step so that a resumed run recomputes the same rate.
#pragma once

#include <cstdint>
#include <string>

#include "rl/settings.hpp"

namespace qerl::rl {

// LR for optimizer step `step` (0-based) of `total_steps`:
//   step < warmup_steps: base_lr * (step + 1) / warmup_steps
//   afterwards, with progress = (step - warmup) / (total - warmup) clamped to [0, 1]
//   (progress = 1 when total <= warmup):
//     constant: base_lr
//     linear:   base_lr * (1 - progress)   (= base_lr * (total - step) / (total - warmup))
//     cosine:   base_lr * 0.5 * (1 + cos(pi * progress))
// Negative step, warmup_steps or total_steps throw qerl::Error.
double lr_at(LrSchedule schedule, double base_lr, int64_t step, int64_t warmup_steps, int64_t total_steps);

}  // namespace qerl::rl
