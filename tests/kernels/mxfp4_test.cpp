// MXFP4 core on plain arrays: both scale rules against independent
// formulas (double-precision log2 and significand), where the two rules
// differ, the error on N(0, 1) weights (~0.11), exact ties at a known
// scale, the all-zero tensor, and the shape error.
#include "kernels/mxfp4.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "common/error.hpp"
#include "kernels/e2m1.hpp"
#include "quant_error.hpp"

using namespace qerl::kernels;

namespace {

// Independent formulas (double precision) for a normal, finite amax > 0.
int ocp_reference(double amax) { return std::clamp(static_cast<int>(std::floor(std::log2(amax))) - 2 + 127, 0, 254); }

int compressed_tensors_reference(double amax) {
  const int exponent = static_cast<int>(std::floor(std::log2(amax)));
  const double significand = amax / std::ldexp(1.0, exponent);
  return std::clamp(exponent + (significand >= 1.75 ? 1 : 0) - 2 + 127, 0, 255);
}

std::vector<float> round_trip(const std::vector<float>& w, int64_t rows, int64_t cols, MxScaleRule rule) {
  std::vector<uint8_t> packed(w.size() / 2), scale(w.size() / 32);
  std::vector<float> out(w.size());
  mxfp4_quantize(w.data(), rows, cols, rule, WeightDtype::f32, packed.data(), scale.data());
  mxfp4_dequantize(packed.data(), scale.data(), rows, cols, out.data());
  return out;
}

}  // namespace

TEST_CASE("mxfp4 scale codes follow both rules for random group maxima") {
  std::mt19937 rng(9);
  std::uniform_real_distribution<double> exponent(-120.0, 120.0);
  for (int n = 0; n < 100000; ++n) {
    const float amax = static_cast<float>(std::exp2(exponent(rng)));
    CAPTURE(amax);
    REQUIRE(mxfp4_scale_code(amax, MxScaleRule::ocp) == ocp_reference(amax));
    REQUIRE(mxfp4_scale_code(amax, MxScaleRule::compressed_tensors) == compressed_tensors_reference(amax));
  }
}

TEST_CASE("mxfp4 rules differ exactly when the significand of amax is >= 1.75") {
  CHECK(mxfp4_scale_code(6.0f, MxScaleRule::ocp) == 127);
  CHECK(mxfp4_scale_code(6.0f, MxScaleRule::compressed_tensors) == 127);
  CHECK(mxfp4_scale_code(std::nextafter(7.0f, 0.0f), MxScaleRule::compressed_tensors) == 127);
  CHECK(mxfp4_scale_code(7.0f, MxScaleRule::ocp) == 127);
  CHECK(mxfp4_scale_code(7.0f, MxScaleRule::compressed_tensors) == 128);
  CHECK(mxfp4_scale_code(1.0f, MxScaleRule::ocp) == 125);
  CHECK(mxfp4_scale_code(1.0f, MxScaleRule::compressed_tensors) == 125);
  // A group max of 7.5: OCP saturates it to 6 (scale 1), c-t gives scale 2 -> 8.
  std::vector<float> w(32, 0.0f);
  w[0] = 7.5f;
  CHECK(round_trip(w, 1, 32, MxScaleRule::ocp)[0] == 6.0f);
  CHECK(round_trip(w, 1, 32, MxScaleRule::compressed_tensors)[0] == 8.0f);
}

TEST_CASE("mxfp4 zero and subnormal group maxima give code 0, never NaN") {
  for (const MxScaleRule rule : {MxScaleRule::ocp, MxScaleRule::compressed_tensors}) {
    CHECK(mxfp4_scale_code(0.0f, rule) == 0);
    CHECK(mxfp4_scale_code(1e-45f, rule) == 0);
    CHECK(mxfp4_scale_code(1e-38f, rule) == 0);
    const std::vector<float> zeros(2 * 32, 0.0f);
    for (const float x : round_trip(zeros, 2, 32, rule)) CHECK(x == 0.0f);
  }
  CHECK(mxfp4_scale_value(0) == std::ldexp(1.0f, -127));
  CHECK(mxfp4_scale_value(127) == 1.0f);
}

TEST_CASE("mxfp4 ties at scale 8 round to the even E2M1 code") {
  // amax 48 = 1.5 * 2^5: e = 3 under both rules; element x decodes as e2m1(x / 8) * 8.
  const float ties[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  const float even[7] = {0.0f, 1.0f, 1.0f, 2.0f, 2.0f, 4.0f, 4.0f};
  std::vector<float> w(32, 0.0f);
  w[0] = 48.0f;
  for (int i = 0; i < 7; ++i) {
    w[1 + 2 * i] = ties[i] * 8.0f;
    w[2 + 2 * i] = -ties[i] * 8.0f;
  }
  for (const MxScaleRule rule : {MxScaleRule::ocp, MxScaleRule::compressed_tensors}) {
    const std::vector<float> out = round_trip(w, 1, 32, rule);
    CHECK(out[0] == 48.0f);
    for (int i = 0; i < 7; ++i) {
      CAPTURE(ties[i]);
      CHECK(out[1 + 2 * i] == even[i] * 8.0f);
      CHECK(out[2 + 2 * i] == -even[i] * 8.0f);
    }
  }
}

TEST_CASE("mxfp4 relative L2 error on N(0,1) 64x4096 is about 0.11") {
  const int64_t rows = 64, cols = 4096;
  const std::vector<float> w = test::gaussian_weight(rows * cols, 2024);
  const double ct = test::relative_l2(w, round_trip(w, rows, cols, MxScaleRule::compressed_tensors));
  const double ocp = test::relative_l2(w, round_trip(w, rows, cols, MxScaleRule::ocp));
  MESSAGE("MXFP4 N(0,1) 64x4096, compressed-tensors rule: relative L2 " << ct << ", SQNR " << test::sqnr_db(ct)
                                                                         << " dB");
  MESSAGE("MXFP4 N(0,1) 64x4096, OCP rule: relative L2 " << ocp << ", SQNR " << test::sqnr_db(ocp) << " dB");
  CHECK(ct > 0.10);
  CHECK(ct < 0.13);
  CHECK(ocp > 0.10);
  CHECK(ocp < 0.14);
}

TEST_CASE("mxfp4 rejects a last dimension that is not a multiple of 32") {
  std::vector<float> w(48);
  std::vector<uint8_t> packed(24), scale(2);
  try {
    mxfp4_quantize(w.data(), 1, 48, MxScaleRule::ocp, WeightDtype::f32, packed.data(), scale.data());
    FAIL("no error");
  } catch (const qerl::Error& e) {
    const std::string message = e.what();
    CHECK(message.find("[1, 48]") != std::string::npos);
    CHECK(message.find("group size 32") != std::string::npos);
  }
}
