// FP8 E4M3 encode/decode from the format's definition: exponent bias 7,
// 3 mantissa bits, exponent field 0 is subnormal (m * 2^-9), and S.1111.111
// is NaN. Encoding scales |value| to an integer count of the quantum of its
// binade (exact, by ldexp) and rounds that count half to even.
#include "kernels/fp8_e4m3.hpp"

#include <algorithm>
#include <cmath>

namespace qerl::kernels {
namespace {

constexpr int exponent_bias = 7;
constexpr int min_normal_exponent = -6;  // 2^-6 = 0.015625
constexpr int mantissa_bits = 3;

// Round half to even of a non-negative value that is exactly representable
// with a few integer bits (all callers pass a value < 2^5).
float round_half_even(float x) {
  const float floor_x = std::floor(x);
  const float fraction = x - floor_x;
  if (fraction > 0.5f) return floor_x + 1.0f;
  if (fraction < 0.5f) return floor_x;
  return std::fmod(floor_x, 2.0f) == 0.0f ? floor_x : floor_x + 1.0f;
}

}  // namespace

uint8_t fp8_e4m3_encode(float value) {
  if (std::isnan(value)) return 0x7F;
  const uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
  const float a = std::fabs(value);
  if (a >= fp8_e4m3_max) return static_cast<uint8_t>(sign | 0x7E);  // 448 = S.1111.110

  int exponent = 0;
  std::frexp(a, &exponent);  // a = f * 2^exponent, f in [0.5, 1)
  const int binade = a == 0.0f ? min_normal_exponent : std::max(exponent - 1, min_normal_exponent);
  // Count of quanta 2^(binade - 3): in [8, 16] for normals, [0, 8] below.
  const int count = static_cast<int>(round_half_even(std::ldexp(a, mantissa_bits - binade)));
  // A count of 16 (or 8 from the subnormal range) is the next binade's 1.0,
  // and the field arithmetic below carries into the exponent by itself.
  const int biased = binade - min_normal_exponent;  // 0 for the subnormal binade
  const int bits = biased * 8 + count;              // = exponent field << 3 | mantissa
  if (bits > 0x7E) return static_cast<uint8_t>(sign | 0x7E);
  return static_cast<uint8_t>(sign | bits);
}

float fp8_e4m3_decode(uint8_t bits) {
  const int exponent_field = (bits >> mantissa_bits) & 0x0F;
  const int mantissa = bits & 0x07;
  float magnitude = 0.0f;
  if (exponent_field == 0x0F && mantissa == 0x07) {
    magnitude = std::nanf("");
  } else if (exponent_field == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), min_normal_exponent - mantissa_bits);
  } else {
    magnitude = std::ldexp(static_cast<float>(8 + mantissa), exponent_field - exponent_bias - mantissa_bits);
  }
  return (bits & 0x80) ? -magnitude : magnitude;
}

}  // namespace qerl::kernels
