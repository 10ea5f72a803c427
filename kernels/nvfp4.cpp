// NVFP4 CPU reference. Every rounding step mirrors one torch op of
// compressed-tensors 0.20.1 on CPU (generate_gparam, calculate_qparams,
// quantize, dequantize), so the bytes and values agree bit for bit; the test
// tests/kernels/peer_parity_test.cpp holds us to that.
#include "kernels/nvfp4.hpp"

#include <cmath>
#include <string>

#include "common/error.hpp"
#include "kernels/e2m1.hpp"
#include "kernels/fp8_e4m3.hpp"

namespace qerl::kernels {
namespace {

constexpr float fp32_tiny = 1.17549435e-38f;         // 2^-126, also bf16's smallest normal
constexpr float global_numerator = 448.0f * 6.0f;  // fp8 max * fp4 max = 2688
constexpr uint8_t zero_scale_replacement = 0x20;   // E4M3 0.125

void check_columns(const char* what, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0 || cols % nvfp4_group_size != 0) {
    throw Error(std::string(what) + ": weight [" + std::to_string(rows) + ", " + std::to_string(cols) +
                "] has a last dimension that is not a multiple of the NVFP4 group size 16");
  }
}

}  // namespace

float nvfp4_global_scale(const float* w, int64_t count, WeightDtype dtype) {
  float amax = 0.0f;
  for (int64_t i = 0; i < count; ++i) amax = std::fmax(amax, std::fabs(w[i]));
  amax = std::fmax(amax, fp32_tiny);
  // torch evaluates `2688 / t` as t.reciprocal() * 2688: two roundings.
  const float reciprocal = round_to(dtype, 1.0f / amax);
  const float global_scale = round_to(dtype, reciprocal * global_numerator);
  return std::isfinite(global_scale) ? global_scale : 1.0f;
}

uint8_t nvfp4_block_scale(float block_amax, float global_scale, WeightDtype dtype) {
  const float local = round_to(dtype, block_amax / e2m1_max);
  const uint8_t bits = fp8_e4m3_encode(global_scale * local);  // saturates at 448 like the clamp
  return bits == 0x00 ? zero_scale_replacement : bits;
}

void nvfp4_quantize(const float* w, int64_t rows, int64_t cols, float global_scale, WeightDtype dtype,
                    uint8_t* packed, uint8_t* block_scale) {
  check_columns("nvfp4_quantize", rows, cols);
  const int64_t groups = cols / nvfp4_group_size;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = w + r * cols + g * nvfp4_group_size;
      float amax = 0.0f;
      for (int64_t i = 0; i < nvfp4_group_size; ++i) amax = std::fmax(amax, std::fabs(x[i]));
      const uint8_t scale_bits = nvfp4_block_scale(amax, global_scale, dtype);
      block_scale[r * groups + g] = scale_bits;
      const float effective_scale = fp8_e4m3_decode(scale_bits) / global_scale;
      uint8_t* out = packed + (r * cols + g * nvfp4_group_size) / 2;
      for (int64_t i = 0; i < nvfp4_group_size; i += 2) {
        out[i / 2] = e2m1_pack(e2m1_encode(x[i] / effective_scale), e2m1_encode(x[i + 1] / effective_scale));
      }
    }
  }
}

void nvfp4_dequantize(const uint8_t* packed, const uint8_t* block_scale, float global_scale, int64_t rows,
                      int64_t cols, float* out) {
  check_columns("nvfp4_dequantize", rows, cols);
  const int64_t groups = cols / nvfp4_group_size;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float effective_scale = fp8_e4m3_decode(block_scale[r * groups + g]) / global_scale;
      e2m1_decode_scaled(packed, r * cols + g * nvfp4_group_size, nvfp4_group_size, effective_scale, out);
    }
  }
}

}  // namespace qerl::kernels
