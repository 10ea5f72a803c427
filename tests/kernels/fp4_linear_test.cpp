// The quantized Linear's entry point, kernels::fp4_linear, against an
// independent decode of the codes (the E2M1 value table, torch's own
// float8_e4m3fn cast for NVFP4 block scales, 2^(e - 127) for MXFP4) and an
// fp32 matmul, on fresh seeded weights and inputs of ragged shapes; the
// gradient reaches the input (LoRA and learners back-propagate through a
// frozen 4-bit base); bad codes give one-line errors.
#include "torch_doctest.hpp"  // first: see there

#include <cmath>
#include <limits>
#include <string>

#include "kernels/fp4_linear.hpp"
#include "kernels/quantize_tensor.hpp"
#include "tests/kernels/fp4_weights.hpp"

using namespace qerl::kernels;

namespace {

// codes [out, in / 2] uint8 (element 2j in the low nibble) -> E2M1 values [out, in] float32.
torch::Tensor decode_e2m1(const torch::Tensor& packed) {
  const float table[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  const torch::Tensor lut = torch::from_blob(const_cast<float*>(table), {16}, torch::kFloat).clone();
  const torch::Tensor bytes = packed.to(torch::kLong);
  const torch::Tensor low = lut.index({bytes.bitwise_and(15)});
  const torch::Tensor high = lut.index({bytes.bitwise_right_shift(4)});
  return torch::stack({low, high}, /*dim=*/2).reshape({packed.size(0), packed.size(1) * 2});
}

// dequant(W) in float32, built without the kernels' decoders.
torch::Tensor independent_dequant(const Fp4Weight& w) {
  const torch::Tensor e2m1 = decode_e2m1(w.packed);
  if (w.nvfp4()) {
    const torch::Tensor block = w.scale.to(torch::kFloat).repeat_interleave(16, /*dim=*/1);
    return e2m1 * block / w.global_scale.to(torch::kFloat).item<float>();
  }
  const torch::Tensor exponent = w.scale.to(torch::kFloat) - 127;
  return e2m1 * torch::pow(2.0, exponent).repeat_interleave(32, /*dim=*/1);
}

using test::quantized;

}  // namespace

TEST_CASE("fp4_linear = x · dequant(W)^T within bf16 rounding, for NVFP4 and MXFP4, ragged shapes") {
  struct Shape {
    int64_t rows, out, in;
  };
  // rows not a multiple of any tile, in a multiple of the group but not of 64, a 3-D input.
  const Shape shapes[] = {{1, 8, 32}, {5, 24, 96}, {33, 40, 160}, {7, 3, 64}};
  uint64_t seed = 100;
  for (const bool nvfp4 : {true, false}) {
    for (const Shape& s : shapes) {
      CAPTURE(nvfp4);
      CAPTURE(s.rows);
      CAPTURE(s.out);
      CAPTURE(s.in);
      torch::manual_seed(++seed);
      const torch::Tensor w = torch::randn({s.out, s.in}) * 0.2;
      const torch::Tensor x = torch::randn({s.rows, s.in}).to(torch::kBFloat16);
      const torch::Tensor bias = torch::randn({s.out}).to(torch::kBFloat16);
      const Fp4Weight q = quantized(w, nvfp4);
      const torch::Tensor reference =
          torch::matmul(x.to(torch::kFloat), independent_dequant(q).t()) + bias.to(torch::kFloat);
      const torch::Tensor y = fp4_linear(x, q, bias);
      REQUIRE((y.scalar_type() == torch::kBFloat16));
      REQUIRE((y.sizes() == torch::IntArrayRef{s.rows, s.out}));
      // bf16 output and a bf16 copy of dequant(W): a few ulps of bf16 relative to the row scale.
      const double scale = reference.abs().max().item<double>() + 1e-6;
      CHECK((y.to(torch::kFloat) - reference).abs().max().item<double>() < 0.02 * scale);
      // In fp32 the only difference is summation order.
      const torch::Tensor y32 = fp4_linear(x.to(torch::kFloat), q, bias.to(torch::kFloat));
      CHECK((y32 - reference).abs().max().item<double>() < 1e-4 * scale);
      // A 3-D input gives the same rows (LibTorch may add the bias in another order: bf16 rounding apart).
      const torch::Tensor y3 = fp4_linear(x.reshape({1, s.rows, s.in}), q, bias);
      REQUIRE((y3.sizes() == torch::IntArrayRef{1, s.rows, s.out}));
      CHECK((y3.reshape({s.rows, s.out}) - y).abs().max().item<double>() <= 0.01 * scale);
    }
  }
}

TEST_CASE("fp4_linear: the gradient reaches x as through the dense dequantized weight; W gets none") {
  torch::manual_seed(7);
  const Fp4Weight q = quantized(torch::randn({12, 48}) * 0.3, /*nvfp4=*/true);
  const torch::Tensor x = torch::randn({6, 48}).requires_grad_(true);
  const torch::Tensor g = torch::randn({6, 12});
  (fp4_linear(x, q, torch::Tensor()) * g).sum().backward();
  const torch::Tensor expected = torch::matmul(g, independent_dequant(q));
  CHECK((x.grad() - expected).abs().max().item<double>() < 1e-4);
}

TEST_CASE("fp4 weights: bytes, and one-line errors for mismatched codes") {
  const Fp4Weight nv = quantized(torch::randn({8, 64}), /*nvfp4=*/true);
  CHECK(nv.bytes() == 8 * 32 + 8 * 4 + 4);  // codes, E4M3 block scales, one fp32 global scale
  const Fp4Weight mx = quantized(torch::randn({8, 64}), /*nvfp4=*/false);
  CHECK(mx.bytes() == 8 * 32 + 8 * 2);
  CHECK_NOTHROW(check_fp4_weight(nv));
  Fp4Weight bad = nv;
  bad.scale = mx.scale;  // MXFP4 scales under an NVFP4 global scale
  try {
    check_fp4_weight(bad);
    FAIL("no error");
  } catch (const qerl::Error& e) {
    const std::string message = e.what();
    CHECK(message.find("NVFP4 codes [8, 32] need weight_scale [8, 4] Float8_e4m3fn, got [8, 2] Byte") !=
          std::string::npos);
    CHECK(message.find('\n') == std::string::npos);
  }
  CHECK_THROWS_AS(fp4_linear(torch::randn({2, 32}), nv, torch::Tensor()), qerl::Error);  // 32 features, W takes 64
}

TEST_CASE("fp4_error_sums: sum of w^2 and of (w - dequant(W))^2, against a per-value loop") {
  for (const bool nvfp4 : {true, false}) {
    for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
      CAPTURE(nvfp4);
      torch::manual_seed(nvfp4 ? 70 : 71);
      const torch::Tensor w = (torch::randn({9, 64}) * 0.3).to(dtype);
      const Fp4Weight codes = test::quantized(w, nvfp4);
      const torch::Tensor sums = fp4_error_sums(w, codes);
      REQUIRE((sums.sizes() == torch::IntArrayRef{2}));
      CHECK((sums.scalar_type() == torch::kDouble));
      // Independent: value by value in double, dequant rounded to w's dtype.
      const torch::Tensor x = w.to(torch::kDouble).contiguous(), dq = fp4_dequantize(codes, dtype).to(torch::kDouble);
      double signal = 0, noise = 0;
      for (int64_t i = 0; i < x.numel(); ++i) {
        const double v = x.view(-1)[i].item<double>(), d = dq.view(-1)[i].item<double>();
        signal += v * v;
        noise += (v - d) * (v - d);
      }
      CHECK(sums[0].item<double>() == doctest::Approx(signal).epsilon(1e-12));
      CHECK(sums[1].item<double>() == doctest::Approx(noise).epsilon(1e-12));
      CHECK(noise > 0);
    }
  }
}

TEST_CASE("nvfp4_global_scales: 2688 / amax per weight, as torch evaluates it in the weight's dtype") {
  torch::manual_seed(72);
  const std::vector<torch::Tensor> ws = {torch::randn({4, 32}), torch::randn({2, 16}).to(torch::kBFloat16) * 9,
                                         torch::zeros({3, 16})};
  const std::vector<float> gs = nvfp4_global_scales(ws);
  REQUIRE(gs.size() == ws.size());
  for (size_t i = 0; i < ws.size(); ++i) {
    // reciprocal, then * 2688, each rounded to the dtype; amax at least the
    // smallest normal float; an infinite G (all-zero weight) is 1.
    const torch::Tensor amax =
        ws[i].abs().max().to(torch::kFloat).clamp_min(std::numeric_limits<float>::min()).to(ws[i].scalar_type());
    const float g = (amax.reciprocal() * 2688).item<float>();
    CAPTURE(i);
    CHECK(gs[i] == (std::isfinite(g) ? g : 1.0f));
  }
  CHECK(gs[2] == 1.0f);
}
