// The LibTorch wrapper's contract: result shapes and dtypes, fake-quantize
// equal to the packed path bit for bit, a given global scale used as is,
// input layout not mattering, one-line errors naming what was given and what
// was expected; and the core's E4M3 / bf16 rounding against torch's casts.
#include "torch_doctest.hpp"  // first: see there

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <torch/autograd.h>

#include "kernels/bf16.hpp"
#include "kernels/fp8_e4m3.hpp"
#include "kernels/quantize_tensor.hpp"

using namespace qerl::kernels;
using qerl::kernels::test::error_of;
using qerl::kernels::test::same_bits;

namespace {

torch::Tensor random_weight(int64_t rows, int64_t cols, uint64_t seed, torch::Dtype dtype) {
  torch::manual_seed(seed);
  return (torch::randn({rows, cols}) * 0.3).to(dtype);
}

void check_one_line(const std::string& message, const std::vector<std::string>& parts) {
  CAPTURE(message);
  CHECK(!message.empty());
  CHECK(message.find('\n') == std::string::npos);
  for (const auto& part : parts) {
    CAPTURE(part);
    CHECK(message.find(part) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("nvfp4 tensors have the checkpoint shapes and dtypes, and fake-quantize equals the packed path") {
  for (const torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    CAPTURE(dtype);
    const torch::Tensor w = random_weight(12, 64, 1, dtype);
    const Nvfp4Weight q = nvfp4_quantize(w);
    CHECK((q.packed.scalar_type() == torch::kUInt8));
    CHECK((q.packed.sizes() == torch::IntArrayRef({12, 32})));
    CHECK((q.block_scale.scalar_type() == torch::kFloat8_e4m3fn));
    CHECK((q.block_scale.sizes() == torch::IntArrayRef({12, 4})));
    CHECK((q.global_scale.scalar_type() == torch::kFloat32));
    CHECK((q.global_scale.sizes() == torch::IntArrayRef({1})));
    CHECK(q.global_scale.item<float>() == nvfp4_global_scale(w));
    const torch::Tensor dequant = nvfp4_dequantize(q.packed, q.block_scale, q.global_scale, dtype);
    const torch::Tensor fake = nvfp4_fake_quantize(w);
    CHECK(same_bits(fake, dequant));
    CHECK((fake.scalar_type() == dtype));
    // Not a no-op: the error is that of a 4-bit format, not zero.
    const double error = ((fake.to(torch::kFloat32) - w.to(torch::kFloat32)).norm() / w.to(torch::kFloat32).norm())
                             .item<double>();
    CHECK(error > 0.05);
    CHECK(error < 0.15);
  }
}

TEST_CASE("nvfp4 uses a given (shared) global scale as is") {
  const torch::Tensor w = random_weight(4, 32, 2, torch::kFloat32);
  const float shared = nvfp4_global_scale(w) / 3.0f;  // a sibling with a 3x larger amax
  const Nvfp4Weight q = nvfp4_quantize(w, shared);
  CHECK(q.global_scale.item<float>() == shared);
  CHECK(!same_bits(q.packed, nvfp4_quantize(w).packed));
  CHECK(same_bits(nvfp4_fake_quantize(w, shared),
                  nvfp4_dequantize(q.packed, q.block_scale, q.global_scale, torch::kFloat32)));
}

TEST_CASE("mxfp4 tensors have the checkpoint shapes and dtypes, and fake-quantize equals the packed path") {
  for (const torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (const MxScaleRule rule : {MxScaleRule::compressed_tensors, MxScaleRule::ocp}) {
      CAPTURE(dtype);
      const torch::Tensor w = random_weight(6, 96, 3, dtype);
      const Mxfp4Weight q = mxfp4_quantize(w, rule);
      CHECK((q.packed.sizes() == torch::IntArrayRef({6, 48})));
      CHECK((q.scale.scalar_type() == torch::kUInt8));
      CHECK((q.scale.sizes() == torch::IntArrayRef({6, 3})));
      CHECK(same_bits(mxfp4_fake_quantize(w, rule), mxfp4_dequantize(q.packed, q.scale, dtype)));
    }
  }
}

TEST_CASE("a transposed (non-contiguous) weight quantizes like its contiguous copy") {
  const torch::Tensor w = random_weight(64, 16, 4, torch::kBFloat16).t();
  REQUIRE(!w.is_contiguous());
  CHECK(same_bits(nvfp4_fake_quantize(w), nvfp4_fake_quantize(w.contiguous())));
  CHECK(same_bits(mxfp4_fake_quantize(w), mxfp4_fake_quantize(w.contiguous())));
}

TEST_CASE("bad shapes, dtypes and scales give one clear qerl::Error line") {
  const torch::Tensor w = random_weight(4, 32, 5, torch::kFloat32);
  check_one_line(error_of([&] { nvfp4_quantize(torch::zeros({2, 3, 32})); }),
                 {"nvfp4_quantize", "2-D", "3-D", "[2, 3, 32]"});
  check_one_line(error_of([&] { nvfp4_quantize(torch::zeros({32})); }), {"2-D", "1-D"});
  check_one_line(error_of([&] { nvfp4_quantize(torch::zeros({4, 40})); }),
                 {"[4, 40]", "in = 40", "multiple of the group size 16"});
  check_one_line(error_of([&] { mxfp4_quantize(torch::zeros({4, 48})); }),
                 {"mxfp4_quantize", "[4, 48]", "multiple of the group size 32"});
  check_one_line(error_of([&] { nvfp4_quantize(w.to(torch::kHalf)); }), {"Half", "expected a Float or BFloat16"});
  check_one_line(error_of([&] { mxfp4_fake_quantize(w.to(torch::kInt)); }), {"Int", "Float or BFloat16"});
  check_one_line(error_of([&] { nvfp4_quantize(w, 0.0f); }), {"global scale", "finite value > 0"});
  check_one_line(error_of([&] { nvfp4_quantize(w, NAN); }), {"global scale"});

  const Nvfp4Weight q = nvfp4_quantize(w);
  check_one_line(error_of([&] { nvfp4_dequantize(q.packed, q.block_scale.to(torch::kFloat32), q.global_scale,
                                                 torch::kFloat32); }),
                 {"block_scale is Float [4, 2]", "expected Float8_e4m3fn [4, 2]"});
  check_one_line(error_of([&] { nvfp4_dequantize(q.packed, q.block_scale, torch::ones({2}), torch::kFloat32); }),
                 {"global_scale is Float [2]", "expected Float [1]"});
  check_one_line(error_of([&] { nvfp4_dequantize(q.packed.to(torch::kInt8), q.block_scale, q.global_scale,
                                                 torch::kFloat32); }),
                 {"packed is Char", "expected Byte"});
  check_one_line(error_of([&] { nvfp4_dequantize(q.packed, q.block_scale, q.global_scale, torch::kHalf); }),
                 {"result dtype Half", "Float or BFloat16"});
  const Mxfp4Weight m = mxfp4_quantize(w);
  check_one_line(error_of([&] { mxfp4_dequantize(m.packed, m.scale.reshape({1, 4}), torch::kFloat32); }),
                 {"scale is Byte [1, 4]", "expected Byte [4, 1]"});
}

TEST_CASE("e4m3 encoding equals torch's float -> float8_e4m3fn cast on [-448, 448]") {
  // Every float with an 11-bit mantissa up to 448, their negatives, and the
  // midpoints between them (torch turns values >= 480 into NaN, we saturate).
  std::vector<float> values;
  for (uint32_t bits = 0; bits <= 0x43E00000u; bits += 1u << 12) {
    for (const uint32_t b : {bits, bits + (1u << 11)}) {
      float v = 0;
      std::memcpy(&v, &b, sizeof v);
      if (v <= 448.0f) values.insert(values.end(), {v, -v});
    }
  }
  const torch::Tensor x = torch::from_blob(values.data(), {static_cast<int64_t>(values.size())}, torch::kFloat32);
  const torch::Tensor theirs = x.to(torch::kFloat8_e4m3fn).view(torch::kUInt8).contiguous();
  const uint8_t* expected = theirs.data_ptr<uint8_t>();
  int64_t mismatches = 0;
  for (size_t i = 0; i < values.size(); ++i) mismatches += fp8_e4m3_encode(values[i]) != expected[i];
  CHECK(values.size() > 500000);
  CHECK(mismatches == 0);
}

TEST_CASE("bf16 rounding equals torch's float -> bfloat16 cast") {
  torch::manual_seed(6);
  const torch::Tensor bits = torch::randint(0, 1LL << 31, {400000}, torch::kInt64).to(torch::kInt32);
  const torch::Tensor x = bits.view(torch::kFloat32);
  const torch::Tensor theirs = x.to(torch::kBFloat16).view(torch::kInt16).contiguous();
  const float* values = x.data_ptr<float>();
  const int16_t* expected = theirs.data_ptr<int16_t>();
  int64_t mismatches = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (std::isnan(values[i])) continue;
    mismatches += static_cast<int16_t>(bf16_bits(values[i])) != expected[i];
  }
  CHECK(mismatches == 0);
}

TEST_CASE("straight-through fake-quant: the value of w + (fq(w) - w).detach() bit for bit, identity gradient") {
  for (const bool nvfp4 : {true, false}) {
    for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      CAPTURE(nvfp4);
      CAPTURE(dtype);
      torch::manual_seed(nvfp4 ? 91 : 92);
      const torch::Tensor w = (torch::randn({24, 96}) * 0.3).to(dtype).requires_grad_(true);
      const float g = nvfp4_global_scale(w.detach());
      const torch::Tensor fq = nvfp4 ? nvfp4_fake_quantize(w.detach(), g) : mxfp4_fake_quantize(w.detach());
      const torch::Tensor old_form = w + (fq - w).detach();
      const torch::Tensor ste = nvfp4 ? nvfp4_fake_quantize_ste(w, g) : mxfp4_fake_quantize_ste(w);
      CHECK((ste.scalar_type() == dtype));
      CHECK(torch::equal(ste, old_form.detach()));
      CHECK(torch::equal(ste, fq));
      const torch::Tensor upstream = torch::randn({24, 96}).to(dtype);
      const torch::Tensor grad = torch::autograd::grad({ste}, {w}, {upstream})[0];
      CHECK(torch::equal(grad, upstream));
    }
  }
}
