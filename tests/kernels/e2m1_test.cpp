// E2M1 against an independent construction: the code table written out from
// the format, nearest-value search with ties to the even code, every tie and
// its float neighbours, the sign rules and the nibble order.
#include "kernels/e2m1.hpp"

#include <cmath>
#include <random>

#include <doctest/doctest.h>

using namespace qerl::kernels;

namespace {

// Magnitude index nearest to a (>= 0) by search; ties go to the even index.
int nearest_index(float a) {
  const float table[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  int best = 0;
  for (int i = 1; i < 8; ++i) {
    const float d_best = std::fabs(a - table[best]), d = std::fabs(a - table[i]);
    if (d < d_best || (d == d_best && i % 2 == 0)) best = i;
  }
  return best;
}

}  // namespace

TEST_CASE("e2m1 decodes the 16 codes to the E2M1 values, sign in bit 3") {
  const float expected[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                              -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
  for (int code = 0; code < 16; ++code) {
    CAPTURE(code);
    CHECK(e2m1_decode(static_cast<uint8_t>(code)) == expected[code]);
    CHECK(std::signbit(e2m1_decode(static_cast<uint8_t>(code))) == (code >= 8));
  }
}

TEST_CASE("e2m1 round-trips every code except -0, which encodes as +0") {
  for (int code = 0; code < 16; ++code) {
    CAPTURE(code);
    const uint8_t back = e2m1_encode(e2m1_decode(static_cast<uint8_t>(code)));
    CHECK(back == (code == 8 ? 0 : code));
  }
}

TEST_CASE("e2m1 sends every tie to the even code and its neighbours to the nearer value") {
  const float ties[7] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  const int at_tie[7] = {0, 2, 2, 4, 4, 6, 6};  // the even neighbour
  for (int i = 0; i < 7; ++i) {
    const float t = ties[i];
    CAPTURE(t);
    CHECK(e2m1_encode(t) == at_tie[i]);
    CHECK(e2m1_encode(std::nextafter(t, 0.0f)) == i);
    CHECK(e2m1_encode(std::nextafter(t, 10.0f)) == i + 1);
    CHECK(e2m1_encode(-t) == (0x08 | at_tie[i]));
    CHECK(e2m1_encode(-std::nextafter(t, 10.0f)) == (0x08 | (i + 1)));
  }
}

TEST_CASE("e2m1 picks the nearest value for random inputs and saturates at 6") {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uniform(-9.0f, 9.0f);
  for (int n = 0; n < 200000; ++n) {
    const float v = uniform(rng);
    CAPTURE(v);
    const int index = nearest_index(std::fabs(v));
    REQUIRE(e2m1_encode(v) == ((v < 0 ? 0x08 : 0) | index));
  }
  CHECK(e2m1_encode(1e30f) == 7);
  CHECK(e2m1_encode(-INFINITY) == 15);
}

TEST_CASE("e2m1 sign: small negatives give -0 (code 8), -0.0 gives +0") {
  CHECK(e2m1_encode(-0.1f) == 8);
  CHECK(e2m1_encode(-1e-30f) == 8);
  CHECK(e2m1_encode(-0.0f) == 0);
  CHECK(e2m1_encode(0.0f) == 0);
}

TEST_CASE("e2m1 packing puts the even element in the low nibble") {
  CHECK(e2m1_pack(0x1, 0x2) == 0x21);
  CHECK(e2m1_pack(0xF, 0x0) == 0x0F);
  CHECK(e2m1_low(0x9A) == 0xA);
  CHECK(e2m1_high(0x9A) == 0x9);
}
