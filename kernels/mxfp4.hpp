// MXFP4 weights (OCP Microscaling; compressed-tensors `mxfp4-pack-quantized`),
// CPU reference on contiguous row-major float arrays, no LibTorch. Groups of
// 32 along cols share one E8M0 scale 2^(code - 127); elements are E2M1 codes
// packed two per byte (even element low). No global scale.
#pragma once

#include <cstdint>

#include "kernels/bf16.hpp"

namespace qerl::kernels {

inline constexpr int64_t mxfp4_group_size = 32;

// How a group's amax becomes its exponent e (scale 2^e, code e + 127).
enum class MxScaleRule {
  // Default. compressed-tensors' generate_mx_scales: amax is first rounded to
  // a power of two, upwards when its significand is >= 1.75 (else down),
  // then e = log2 of that - 2; code clamped to [0, 255]. amax = 0 (or a
  // subnormal that rounds to 0) gives code 0.
  compressed_tensors,
  // OCP MX v1.0: e = floor(log2(amax)) - 2, code clamped to [0, 254];
  // amax = 0 gives code 0. Values above 6 * 2^e saturate to 6.
  ocp,
};

// E8M0 code of a group whose largest magnitude is `amax` (>= 0).
uint8_t mxfp4_scale_code(float amax, MxScaleRule rule);

// 2^(code - 127) as a float: code 0 is 2^-127 (an fp32 subnormal); code 255
// gives inf, as in compressed-tensors (OCP calls it NaN).
float mxfp4_scale_value(uint8_t code);

// w: [rows, cols] floats (a bf16 weight widened exactly, dtype = bf16);
// cols must be a multiple of 32 (throws qerl::Error otherwise).
// packed: [rows, cols / 2] bytes; scale: [rows, cols / 32] E8M0 codes.
// Elements: e2m1(x / 2^e), the division rounded to `dtype`.
void mxfp4_quantize(const float* w, int64_t rows, int64_t cols, MxScaleRule rule, WeightDtype dtype,
                    uint8_t* packed, uint8_t* scale);

// out: [rows, cols] fp32 values e2m1 * 2^e (exact; round to bf16 if needed).
void mxfp4_dequantize(const uint8_t* packed, const uint8_t* scale, int64_t rows, int64_t cols, float* out);

}  // namespace qerl::kernels
