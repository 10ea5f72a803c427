// MXFP4 CPU reference. The compressed-tensors scale rule works on the bits of
// amax (add a quarter of the leading mantissa range, keep sign and exponent),
// which is what round_to_power_2 in compressed-tensors 0.20.1 does; the OCP
// rule reads the exponent with ilogb (subnormals included).
#include "kernels/mxfp4.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.hpp"
#include "kernels/e2m1.hpp"

namespace qerl::kernels {
namespace {

constexpr int e8m0_bias = 127;
constexpr int e2m1_emax = 2;  // floor(log2(6))

void check_columns(const char* what, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0 || cols % mxfp4_group_size != 0) {
    throw Error(std::string(what) + ": weight [" + std::to_string(rows) + ", " + std::to_string(cols) +
                "] has a last dimension that is not a multiple of the MXFP4 group size 32");
  }
}

uint8_t compressed_tensors_code(float amax) {
  uint32_t bits = 0;
  std::memcpy(&bits, &amax, sizeof bits);
  // Significand >= 1.75 carries into the exponent: 1 << (23 - 1 - 1).
  const uint32_t rounded = (bits + (1u << 21)) & 0xFF800000u;
  const int biased_exponent = static_cast<int>(rounded >> 23);
  if (rounded == 0) return 0;                 // log2(0) = -inf, clamped to 0
  if (biased_exponent == 0xFF) return 0xFF;   // rounded up to inf
  return static_cast<uint8_t>(std::clamp(biased_exponent - e2m1_emax, 0, 255));
}

uint8_t ocp_code(float amax) {
  if (std::isnan(amax)) return 0xFF;
  if (amax == 0.0f) return 0;
  const int exponent = std::isinf(amax) ? INT_MAX / 2 : std::ilogb(amax);
  return static_cast<uint8_t>(std::clamp(exponent - e2m1_emax + e8m0_bias, 0, 254));
}

}  // namespace

uint8_t mxfp4_scale_code(float amax, MxScaleRule rule) {
  return rule == MxScaleRule::ocp ? ocp_code(amax) : compressed_tensors_code(amax);
}

float mxfp4_scale_value(uint8_t code) { return std::ldexp(1.0f, static_cast<int>(code) - e8m0_bias); }

void mxfp4_quantize(const float* w, int64_t rows, int64_t cols, MxScaleRule rule, WeightDtype dtype,
                    uint8_t* packed, uint8_t* scale) {
  check_columns("mxfp4_quantize", rows, cols);
  const int64_t groups = cols / mxfp4_group_size;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = w + r * cols + g * mxfp4_group_size;
      float amax = 0.0f;
      for (int64_t i = 0; i < mxfp4_group_size; ++i) amax = std::fmax(amax, std::fabs(x[i]));
      const uint8_t code = mxfp4_scale_code(amax, rule);
      scale[r * groups + g] = code;
      const float scale_value = mxfp4_scale_value(code);
      uint8_t* out = packed + (r * cols + g * mxfp4_group_size) / 2;
      for (int64_t i = 0; i < mxfp4_group_size; i += 2) {
        out[i / 2] = e2m1_pack(e2m1_encode(round_to(dtype, x[i] / scale_value)),
                               e2m1_encode(round_to(dtype, x[i + 1] / scale_value)));
      }
    }
  }
}

void mxfp4_dequantize(const uint8_t* packed, const uint8_t* scale, int64_t rows, int64_t cols, float* out) {
  check_columns("mxfp4_dequantize", rows, cols);
  const int64_t groups = cols / mxfp4_group_size;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float scale_value = mxfp4_scale_value(scale[r * groups + g]);
      e2m1_decode_scaled(packed, r * cols + g * mxfp4_group_size, mxfp4_group_size, scale_value, out);
    }
  }
}

}  // namespace qerl::kernels
