// float <-> bfloat16 by bit manipulation: bf16 is the upper half of an IEEE
// float, so rounding adds half an ulp of the lower half (plus the tie bit)
// and truncates.
#include "kernels/bf16.hpp"

#include <cstring>

namespace qerl::kernels {

uint16_t bf16_bits(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x007FFFFFu) != 0) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN
  }
  const uint32_t tie_to_even = (bits >> 16) & 1u;
  bits += 0x7FFFu + tie_to_even;
  return static_cast<uint16_t>(bits >> 16);
}

float bf16_value(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value = 0.0f;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

}  // namespace qerl::kernels
