// The fused decoder kernels (kernels/cuda/decoder_ops.hpp) against the
// composed LibTorch ops of models/nn (HF's formulas) on the same GPU, on
// seeded random inputs of several shapes (rows not a multiple of a block,
// head dims 8 to 256, strided inputs): the rotary embedding bit for bit,
// RMSNorm within one bf16 step on at most 1 % of values (only the fp32 sum
// of squares is ordered differently). Skipped, saying so, without a GPU.
#include "torch_doctest.hpp"  // first: see there

#include <torch/cuda.h>

#include <cmath>
#include <vector>

#include "kernels/cuda/decoder_ops_torch.hpp"

namespace {

bool gpu_visible() {
  if (torch::cuda::is_available()) return true;
  MESSAGE("SKIPPED: no CUDA device visible; the fused decoder kernels were not run");
  return false;
}

// models/nn/rms_norm.cpp's formula.
torch::Tensor composed_rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto x32 = x.to(torch::kFloat);
  x32 = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * x32.to(x.scalar_type());
}

// models/nn/rotary_embedding.cpp's apply_rotary on x [B, H, S, D].
torch::Tensor composed_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const auto rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);
}

}  // namespace

TEST_CASE("fused RMSNorm == the composed ops within one bf16 step") {
  if (!gpu_visible()) return;
  torch::manual_seed(61);
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{37, 2048}, {3, 5, 4, 128}, {1, 8}, {130, 64}, {2, 9000}}) {
    CAPTURE(c10::str(torch::IntArrayRef(shape)));
    const torch::Tensor x = torch::randn(shape, bf16) * 3;
    const torch::Tensor weight = torch::randn({shape.back()}, bf16);
    const torch::Tensor fused = qerl::kernels::cuda::rms_norm(x, weight, 1e-6).to(torch::kFloat).cpu();
    const torch::Tensor composed = composed_rms_norm(x, weight, 1e-6).to(torch::kFloat).cpu();
    const torch::Tensor step = composed.abs() * std::ldexp(1.0, -7) + 1e-30;
    CHECK((fused - composed).abs().le(step).all().item<bool>());
    CHECK(fused.ne(composed).to(torch::kFloat).mean().item<double>() <= 0.01);
  }
  // A strided input goes through a contiguous copy.
  const torch::Tensor wide = torch::randn({6, 256}, bf16);
  const torch::Tensor weight = torch::randn({128}, bf16);
  const torch::Tensor strided = wide.narrow(1, 64, 128);
  const torch::Tensor fused = qerl::kernels::cuda::rms_norm(strided, weight, 1e-5).to(torch::kFloat).cpu();
  const torch::Tensor composed = composed_rms_norm(strided, weight, 1e-5).to(torch::kFloat).cpu();
  CHECK((fused - composed).abs().le(composed.abs() * std::ldexp(1.0, -7) + 1e-30).all().item<bool>());
  CHECK_THROWS_AS(qerl::kernels::cuda::rms_norm(wide, weight, 1e-6), qerl::Error);  // 256 values, 128 weights
  CHECK_THROWS_AS(qerl::kernels::cuda::rms_norm(strided.to(torch::kFloat), weight, 1e-6), qerl::Error);
}

TEST_CASE("fused rotary embedding == the composed ops bit for bit, [B, S, H, D] in, [B, H, S, D] out") {
  if (!gpu_visible()) return;
  torch::manual_seed(62);
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{32, 1, 16, 128}, {3, 13, 4, 8}, {2, 7, 5, 256}, {1, 1, 1, 2}}) {
    CAPTURE(c10::str(torch::IntArrayRef(shape)));
    const int64_t batch = shape[0], seq = shape[1], dim = shape[3];
    const torch::Tensor x = torch::randn(shape, bf16) * 2;
    // Tables as RotaryEmbedding makes them: cos/sin of position * inverse frequency.
    const torch::Tensor positions = torch::randint(0, 4096, {batch, seq}, bf16.dtype(torch::kLong));
    const torch::Tensor inv_freq =
        1.0 / torch::pow(10000.0, torch::arange(0, dim, 2, bf16.dtype(torch::kFloat)) / static_cast<double>(dim));
    const torch::Tensor freqs = positions.to(torch::kFloat).unsqueeze(-1) * inv_freq;
    const torch::Tensor angles = torch::cat({freqs, freqs}, -1);
    const torch::Tensor cos = angles.cos().to(torch::kBFloat16), sin = angles.sin().to(torch::kBFloat16);
    const torch::Tensor fused = qerl::kernels::cuda::rotary(x, cos, sin);
    CHECK(fused.sizes() == torch::IntArrayRef{batch, shape[2], seq, dim});
    CHECK(torch::equal(fused, composed_rotary(x.transpose(1, 2), cos, sin)));
  }
  // A non-contiguous input (a narrowed projection output) gives the same.
  const torch::Tensor wide = torch::randn({2, 3, 4, 64}, bf16);
  const torch::Tensor x = wide.narrow(3, 0, 32);
  const torch::Tensor cos = torch::randn({2, 3, 32}, bf16), sin = torch::randn({2, 3, 32}, bf16);
  CHECK(torch::equal(qerl::kernels::cuda::rotary(x, cos, sin), composed_rotary(x.transpose(1, 2), cos, sin)));
  CHECK_THROWS_AS(qerl::kernels::cuda::rotary(x, cos.narrow(2, 0, 16), sin.narrow(2, 0, 16)), qerl::Error);
}
