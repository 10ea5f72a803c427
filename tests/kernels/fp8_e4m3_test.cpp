// FP8 E4M3 (fn) against an independent construction: all 256 codes decoded
// from the format's anchors and monotonicity, and float -> code checked
// against a brute-force nearest search (ties to the even code, saturation at
// 448) on random values, every midpoint between codes, and its neighbours.
#include "kernels/fp8_e4m3.hpp"

#include <cmath>
#include <random>
#include <vector>

#include <doctest/doctest.h>

using namespace qerl::kernels;

namespace {

// Positive finite E4M3 values 0x00..0x7E, built by counting: codes step by
// 2^-9 up to 2^-5 (code 16), then the step doubles at each binade (code 8k).
std::vector<double> positive_values() {
  std::vector<double> values;
  double step = std::ldexp(1.0, -9), v = 0.0;
  for (int code = 0; code <= 0x7E; ++code) {
    values.push_back(v);
    if (code >= 16 && code % 8 == 0) step *= 2;
    v += step;
  }
  return values;
}

// Code nearest to a >= 0 by search; ties to the even code; above 448 -> 0x7E.
int nearest_code(double a, const std::vector<double>& values) {
  int best = 0;
  for (int c = 1; c < static_cast<int>(values.size()); ++c) {
    const double d_best = std::fabs(a - values[best]), d = std::fabs(a - values[c]);
    if (d < d_best || (d == d_best && c % 2 == 0)) best = c;
  }
  return best;
}

}  // namespace

TEST_CASE("e4m3 decodes all 256 codes as the format defines them") {
  const std::vector<double> values = positive_values();
  REQUIRE(values.size() == 127);
  CHECK(values[0x7E] == 448.0);
  CHECK(values[0x38] == 1.0);
  CHECK(values[0x20] == 0.125);
  CHECK(values[0x08] == 0.015625);
  for (int code = 0; code < 256; ++code) {
    CAPTURE(code);
    const float v = fp8_e4m3_decode(static_cast<uint8_t>(code));
    if ((code & 0x7F) == 0x7F) {
      CHECK(std::isnan(v));
      continue;
    }
    CHECK(std::fabs(v) == static_cast<float>(values[code & 0x7F]));
    CHECK(std::signbit(v) == (code >= 0x80));
    CHECK(fp8_e4m3_encode(v) == code);  // round trip, -0 included
  }
}

TEST_CASE("e4m3 encodes to the nearest code with ties to even, saturating at 448") {
  const std::vector<double> values = positive_values();
  std::vector<float> probes;
  for (size_t c = 0; c + 1 < values.size(); ++c) {
    const float mid = static_cast<float>((values[c] + values[c + 1]) / 2);  // exact in float
    probes.push_back(mid);
    probes.push_back(std::nextafter(mid, 0.0f));
    probes.push_back(std::nextafter(mid, 1000.0f));
  }
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> exponent(-14.0f, 9.5f);
  for (int n = 0; n < 100000; ++n) probes.push_back(std::exp2(exponent(rng)));
  probes.insert(probes.end(), {0.0f, 1e-30f, 448.0f, 463.99f, 464.0f, 1e6f, INFINITY});
  for (const float p : probes) {
    for (const float v : {p, -p}) {
      CAPTURE(v);
      const int magnitude = nearest_code(std::fabs(v), values);
      REQUIRE(fp8_e4m3_encode(v) == ((std::signbit(v) ? 0x80 : 0) | magnitude));
    }
  }
  CHECK(fp8_e4m3_encode(NAN) == 0x7F);
}
