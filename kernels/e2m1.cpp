// E2M1 encode/decode. The thresholds are the midpoints between neighbouring
// magnitudes; whether a midpoint itself goes down (<=) or up (>=) is chosen
// so that it lands on the even code, which is what compressed-tensors'
// cast_to_fp4 does as well.
#include "kernels/e2m1.hpp"

#include <cmath>

namespace qerl::kernels {
namespace {

constexpr float magnitudes[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

// Magnitude index of |value| (value already non-negative).
uint8_t magnitude_index(float a) {
  if (a <= 0.25f) return 0;  // tie 0.25 -> 0 (even)
  if (a < 0.75f) return 1;   // tie 0.75 -> 1.0
  if (a <= 1.25f) return 2;  // tie 1.25 -> 1.0
  if (a < 1.75f) return 3;   // tie 1.75 -> 2.0
  if (a <= 2.5f) return 4;   // tie 2.5  -> 2.0
  if (a < 3.5f) return 5;    // tie 3.5  -> 4.0
  if (a <= 5.0f) return 6;   // tie 5.0  -> 4.0
  return 7;                  // saturate at 6
}

}  // namespace

uint8_t e2m1_encode(float value) {
  if (std::isnan(value)) return 0;
  const uint8_t sign = value < 0.0f ? 0x08 : 0x00;
  return static_cast<uint8_t>(sign | magnitude_index(std::fabs(value)));
}

float e2m1_decode(uint8_t code) {
  const float magnitude = magnitudes[code & 0x07];
  return (code & 0x08) ? -magnitude : magnitude;
}

}  // namespace qerl::kernels
