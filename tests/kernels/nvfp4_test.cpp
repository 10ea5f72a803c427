// NVFP4 core on plain arrays: the error on N(0, 1) weights (QeRL / REFERENCE
// figure ~0.095), the global and block scale rules (zero tensor, zero block,
// tiny values, saturation under a shared G), nibble order and the shape error.
#include "kernels/nvfp4.hpp"

#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "common/error.hpp"
#include "kernels/e2m1.hpp"
#include "kernels/fp8_e4m3.hpp"
#include "quant_error.hpp"

using namespace qerl::kernels;

namespace {

struct Quantized {
  std::vector<uint8_t> packed, scale;
  std::vector<float> dequant;
};

Quantized round_trip(const std::vector<float>& w, int64_t rows, int64_t cols, float g,
                     WeightDtype dtype = WeightDtype::f32) {
  Quantized q{std::vector<uint8_t>(w.size() / 2), std::vector<uint8_t>(w.size() / 16), std::vector<float>(w.size())};
  nvfp4_quantize(w.data(), rows, cols, g, dtype, q.packed.data(), q.scale.data());
  nvfp4_dequantize(q.packed.data(), q.scale.data(), g, rows, cols, q.dequant.data());
  return q;
}

}  // namespace

TEST_CASE("nvfp4 relative L2 error on N(0,1) 64x4096 is about 0.095") {
  const int64_t rows = 64, cols = 4096;
  const std::vector<float> w = test::gaussian_weight(rows * cols, 2024);
  const float g = nvfp4_global_scale(w.data(), rows * cols, WeightDtype::f32);
  const Quantized q = round_trip(w, rows, cols, g);
  const double error = test::relative_l2(w, q.dequant);
  MESSAGE("NVFP4 N(0,1) 64x4096: relative L2 " << error << ", SQNR " << test::sqnr_db(error) << " dB");
  CHECK(error > 0.08);
  CHECK(error < 0.11);
}

TEST_CASE("nvfp4 global scale is 2688 / amax, and 1 when that is not finite") {
  std::vector<float> w = {0.5f, -3.0f, 1.0f, 0.0f};
  const float g = nvfp4_global_scale(w.data(), 4, WeightDtype::f32);
  CHECK(g == doctest::Approx(2688.0 / 3.0).epsilon(1e-6));
  const float g_bf16 = nvfp4_global_scale(w.data(), 4, WeightDtype::bf16);
  CHECK(round_to_bf16(g_bf16) == g_bf16);  // computed in bf16
  CHECK(g_bf16 == doctest::Approx(2688.0 / 3.0).epsilon(1e-2));

  std::vector<float> zeros(32, 0.0f);
  CHECK(nvfp4_global_scale(zeros.data(), 32, WeightDtype::f32) == 1.0f);
  std::vector<float> below_tiny(32, 1e-37f);
  CHECK(nvfp4_global_scale(below_tiny.data(), 32, WeightDtype::bf16) == 1.0f);
}

TEST_CASE("nvfp4 on an all-zero tensor stores scale 0.125 and decodes to zeros, no NaN") {
  const std::vector<float> zeros(4 * 32, 0.0f);
  const float g = nvfp4_global_scale(zeros.data(), zeros.size(), WeightDtype::f32);
  const Quantized q = round_trip(zeros, 4, 32, g);
  for (const uint8_t s : q.scale) CHECK(s == 0x20);
  for (const uint8_t b : q.packed) CHECK(b == 0);
  for (const float x : q.dequant) CHECK(x == 0.0f);
}

TEST_CASE("nvfp4 zero block inside a normal tensor gets scale 0.125; others are scaled to their own max") {
  std::vector<float> w = test::gaussian_weight(2 * 32, 3);
  for (int i = 16; i < 32; ++i) w[i] = 0.0f;  // row 0, block 1
  const float g = nvfp4_global_scale(w.data(), w.size(), WeightDtype::f32);
  const Quantized q = round_trip(w, 2, 32, g);
  CHECK(q.scale[1] == 0x20);
  for (int i = 8; i < 16; ++i) CHECK(q.packed[i] == 0);
  // A non-zero block's max maps to (about) 6: its code is ±6 or ±4.
  const int64_t block = 2;  // row 1, block 0
  float amax = 0;
  int at = 0;
  for (int i = 0; i < 16; ++i) {
    if (std::fabs(w[32 + i]) > amax) amax = std::fabs(w[32 + i]), at = 32 + i;
  }
  const float decoded = std::fabs(q.dequant[at]);
  CHECK(decoded == doctest::Approx(amax).epsilon(0.1));
  CHECK(q.scale[block] != 0x20);
}

TEST_CASE("nvfp4 keeps tiny tensors (1e-30) representable through the global scale") {
  std::vector<float> w = test::gaussian_weight(4 * 32, 4);
  for (float& x : w) x *= 1e-30f;
  const float g = nvfp4_global_scale(w.data(), w.size(), WeightDtype::f32);
  CHECK(std::isfinite(g));
  CHECK(g > 1e32f);
  const Quantized q = round_trip(w, 4, 32, g);
  const double error = test::relative_l2(w, q.dequant);
  CHECK(error < 0.2);
}

TEST_CASE("nvfp4 under a too-small shared G saturates block scales at 448 and elements at 6") {
  // amax 6000 with G = 1 wants scale 1000: E4M3 stops at 448, so values
  // beyond 6 * 448 clamp to the largest code.
  std::vector<float> w(16, 0.0f);
  w[0] = 6000.0f;
  w[1] = -2688.0f;  // 6 * 448 exactly
  w[2] = 448.0f;    // 1 * 448
  const Quantized q = round_trip(w, 1, 16, /*g=*/1.0f);
  CHECK(q.scale[0] == 0x7E);
  CHECK(e2m1_low(q.packed[0]) == 0x7);
  CHECK(e2m1_high(q.packed[0]) == 0xF);
  CHECK(e2m1_low(q.packed[1]) == 0x2);
  CHECK(q.dequant[0] == 2688.0f);
}

TEST_CASE("nvfp4 packs element 2j in the low nibble and 2j+1 in the high nibble") {
  // G = 1 and block max 6 give s = 1: elements are their own E2M1 values.
  std::vector<float> w = {6.0f, -0.5f, 1.0f, 3.0f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -6.0f};
  const Quantized q = round_trip(w, 1, 16, /*g=*/1.0f);
  CHECK(q.scale[0] == fp8_e4m3_encode(1.0f));
  CHECK(q.packed[0] == 0x97);  // low: 6 (7), high: -0.5 (8 | 1)
  CHECK(q.packed[1] == 0x52);  // low: 1 (2), high: 3 (5)
  CHECK(q.packed[7] == 0xF0);  // low: 0, high: -6 (15)
  for (size_t i = 0; i < w.size(); ++i) CHECK(q.dequant[i] == w[i]);
}

TEST_CASE("nvfp4 rejects a last dimension that is not a multiple of 16") {
  std::vector<float> w(40);
  std::vector<uint8_t> packed(20), scale(3);
  try {
    nvfp4_quantize(w.data(), 1, 40, 1.0f, WeightDtype::f32, packed.data(), scale.data());
    FAIL("no error");
  } catch (const qerl::Error& e) {
    const std::string message = e.what();
    CHECK(message.find("[1, 40]") != std::string::npos);
    CHECK(message.find("group size 16") != std::string::npos);
  }
}
