// The CUDA fp4 kernels against the CPU reference, on a GPU host (QERL_CUDA
// builds): dequantization bit-exact with kernels::fp4_dequantize; the
// W4A16 GEMV (M = 1..8) and the linear within bf16 rounding of an fp32
// x · dequant(W)ᵀ, on fresh seeded inputs of ragged shapes (N not a
// multiple of the 4 rows a block takes, K an odd multiple of 32), no NaN
// anywhere in the output. Without a visible GPU every case says so and
// passes nothing off as checked.
#include "torch_doctest.hpp"  // first: see there

#include <torch/cuda.h>

#include "kernels/cuda/fp4_cuda_torch.hpp"
#include "kernels/fp4_linear.hpp"
#include "kernels/quantize_tensor.hpp"
#include "tests/kernels/fp4_weights.hpp"

using namespace qerl::kernels;

namespace {

bool gpu() {
  if (torch::cuda::is_available()) return true;
  MESSAGE("SKIPPED: no CUDA device visible; the CUDA fp4 kernels were not run");
  return false;
}

using test::quantized;

}  // namespace

TEST_CASE("CUDA dequantize: bit-exact with the CPU reference, NVFP4 and MXFP4") {
  if (!gpu()) return;
  uint64_t seed = 700;
  for (const bool nvfp4 : {true, false}) {
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 32}, {7, 96}, {129, 2080}}) {
      CAPTURE(nvfp4);
      CAPTURE(rows);
      CAPTURE(cols);
      torch::manual_seed(++seed);
      const Fp4Weight cpu = quantized(torch::randn({rows, cols}) * 0.5, nvfp4);
      const torch::Tensor expected = fp4_dequantize(cpu, torch::kBFloat16);
      const torch::Tensor got = cuda::fp4_dequantize_bf16(cpu.to(torch::kCUDA)).cpu();
      CHECK(torch::equal(got.view(torch::kShort), expected.view(torch::kShort)));
    }
  }
}

TEST_CASE("CUDA W4A16 linear: within bf16 rounding of an fp32 x · dequant(W)^T, decode and prefill rows") {
  if (!gpu()) return;
  uint64_t seed = 800;
  for (const bool nvfp4 : {true, false}) {
    for (const int64_t M : {1, 2, 3, 5, 8, 9, 64}) {
      for (const auto& [N, K] : std::vector<std::pair<int64_t, int64_t>>{{5, 32}, {131, 416}, {1024, 2048}}) {
        CAPTURE(nvfp4);
        CAPTURE(M);
        CAPTURE(N);
        CAPTURE(K);
        torch::manual_seed(++seed);
        const Fp4Weight cpu = quantized(torch::randn({N, K}) * 0.2, nvfp4);
        const torch::Tensor x = torch::randn({M, K}).to(torch::kBFloat16);
        const torch::Tensor bias = torch::randn({N}).to(torch::kBFloat16);
        const torch::Tensor reference =
            torch::matmul(x.to(torch::kFloat), fp4_dequantize(cpu, torch::kFloat).t()) + bias.to(torch::kFloat);
        const torch::Tensor y = cuda::fp4_linear_bf16(x.cuda(), cpu.to(torch::kCUDA), bias.cuda()).cpu();
        REQUIRE((y.sizes() == torch::IntArrayRef{M, N}));
        CHECK_FALSE(torch::isnan(y).any().item<bool>());
        const double error = (y.to(torch::kFloat) - reference).norm().item<double>() / reference.norm().item<double>();
        CHECK(error < 1e-2);
      }
    }
  }
}
