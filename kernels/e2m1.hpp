// E2M1 (FP4): the 4-bit element format of NVFP4 and MXFP4. A code is a
// magnitude index 0..7 for {0, 0.5, 1, 1.5, 2, 3, 4, 6} with the sign in
// bit 3; rounding is to nearest with ties to the even code, saturating at 6.
// Two codes share a byte: the even element in the low nibble.
#pragma once

#include <cstdint>

namespace qerl::kernels {

inline constexpr float e2m1_max = 6.0f;

// The E2M1 code nearest to `value` (ties to even, |value| > 6 gives ±6).
// The sign bit is set only for value < 0, so -0.0 encodes as +0 while a
// small negative value rounds to code 8 (-0): compressed-tensors does both.
// NaN is not a valid input (it encodes as 0).
uint8_t e2m1_encode(float value);

// The value of a 4-bit code (bits above 3 are ignored); code 8 gives -0.0.
float e2m1_decode(uint8_t code);

// byte = low | high << 4 (both codes masked to 4 bits).
inline uint8_t e2m1_pack(uint8_t low, uint8_t high) {
  return static_cast<uint8_t>((low & 0x0F) | ((high & 0x0F) << 4));
}
inline uint8_t e2m1_low(uint8_t byte) { return byte & 0x0F; }
inline uint8_t e2m1_high(uint8_t byte) { return byte >> 4; }

// out[first + i] = decode(code first + i) * scale for i in [0, count), the
// codes read two per byte from `packed` (first and count even).
inline void e2m1_decode_scaled(const uint8_t* packed, int64_t first, int64_t count, float scale, float* out) {
  for (int64_t i = 0; i < count; i += 2) {
    const uint8_t byte = packed[(first + i) / 2];
    out[first + i] = e2m1_decode(e2m1_low(byte)) * scale;
    out[first + i + 1] = e2m1_decode(e2m1_high(byte)) * scale;
  }
}

}  // namespace qerl::kernels
