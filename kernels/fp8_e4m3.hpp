// FP8 E4M3 (the "fn" variant: no infinities, one NaN pattern per sign,
// max 448): the block-scale format of NVFP4. Conversion from float rounds to
// nearest, ties to even, with subnormals (down to 2^-9) and saturation at
// ±448 — the same bits as torch's float -> float8_e4m3fn cast on [-448, 448].
#pragma once

#include <cstdint>

namespace qerl::kernels {

inline constexpr float fp8_e4m3_max = 448.0f;

// E4M3 bits of `value`: RTNE, |value| > 448 (and ±inf) saturate to ±448,
// NaN gives 0x7F.
uint8_t fp8_e4m3_encode(float value);

// The float value of E4M3 bits (0x7F / 0xFF are NaN).
float fp8_e4m3_decode(uint8_t bits);

}  // namespace qerl::kernels
