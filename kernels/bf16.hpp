// bfloat16 rounding for the CPU reference kernels. compressed-tensors runs
// part of its scale arithmetic in the weight's dtype; for a bf16 weight that
// means every such op is computed in float and rounded to bf16, which these
// helpers reproduce (round to nearest even, like torch's float -> bf16 cast).
#pragma once

#include <cstdint>

namespace qerl::kernels {

// The dtype a weight arrives in; it decides the rounding of the scale math.
enum class WeightDtype { f32, bf16 };

// bf16 bits of `value` (RTNE; NaN stays a quiet NaN).
uint16_t bf16_bits(float value);

// The float whose upper 16 bits are `bits`.
float bf16_value(uint16_t bits);

// value rounded to the nearest bf16, as a float.
inline float round_to_bf16(float value) { return bf16_value(bf16_bits(value)); }

// value rounded to `dtype` (identity for f32).
inline float round_to(WeightDtype dtype, float value) {
  return dtype == WeightDtype::bf16 ? round_to_bf16(value) : value;
}

}  // namespace qerl::kernels
