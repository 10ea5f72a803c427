// The CUDA fp4 kernels against the CPU reference, on a GPU host (QERL_CUDA
// builds), on fresh seeded inputs of ragged shapes (rows not a multiple of a
// tile, K an odd multiple of the group): packing, fake-quant and
// dequantization bit for bit; matmuls within bf16 rounding of an fp32
// x · dequant(W)ᵀ. The MoE experts' kernels: fp4_experts_cuda_test.cpp.
// Without a visible GPU every case says so and passes nothing off as
// checked.
#include "torch_doctest.hpp"  // first: see there

#include <torch/autograd.h>

#include "kernels/cuda/fp4_cuda.hpp"
#include "kernels/cuda/fp4_cuda_torch.hpp"
#include "kernels/cuda/kernel_choices.hpp"
#include "kernels/fp4_linear.hpp"
#include "kernels/quantize_tensor.hpp"
#include "tests/kernels/fp4_weights.hpp"

using namespace qerl::kernels;

namespace {

bool gpu() { return test::cuda_visible("the CUDA fp4 kernels"); }

using test::quantized;
using test::relative_error;
using test::same_bits;
using test::worst_error;

// A weight with a spread of magnitudes: a few groups all zero, a few large,
// one of values near the bottom of fp32's range beside one normal value
// (quotients by its scale underflow: the kernels' IEEE fallback).
torch::Tensor weight(int64_t rows, int64_t cols, torch::Dtype dtype) {
  using torch::indexing::Slice;
  torch::Tensor w = torch::randn({rows, cols}) * torch::exp(torch::randn({rows, 1}) * 0.7) * 0.05;
  w.index_put_({0, Slice(0, 16)}, 0.0);
  if (rows > 1) {
    w.index_put_({1, Slice(0, 16)}, torch::randn({16}) * 1e-38);
    w.index_put_({1, 0}, 0.5);
  }
  if (rows > 2) w.index_put_({2, torch::indexing::Slice(0, 32)}, w.index({2, torch::indexing::Slice(0, 32)}) * 40);
  return w.to(dtype);
}

// A seeded quantized weight [N, K], x [M, K] and bias, and the fp32
// reference x · dequant(W)^T + b.
struct LinearCase {
  Fp4Weight cpu;
  torch::Tensor x, bias, reference;
};

LinearCase linear_case(int64_t M, int64_t N, int64_t K, bool nvfp4, uint64_t seed) {
  torch::manual_seed(seed);
  LinearCase c;
  c.cpu = quantized(weight(N, K, torch::kFloat) * 4, nvfp4);
  c.x = torch::randn({M, K}).to(torch::kBFloat16);
  c.bias = torch::randn({N}).to(torch::kBFloat16);
  c.reference = torch::matmul(c.x.to(torch::kFloat), fp4_dequantize(c.cpu, torch::kFloat).t()) + c.bias.to(torch::kFloat);
  return c;
}

// y against the case's reference: shape, on the GPU, no NaN, within bf16 rounding.
void check_against(const torch::Tensor& y, const LinearCase& c) {
  REQUIRE((y.sizes() == torch::IntArrayRef{c.x.size(0), c.reference.size(1)}));
  CHECK(y.is_cuda());
  CHECK_FALSE(torch::isnan(y).any().item<bool>());
  CHECK(relative_error(y, c.reference) < 1e-2);
  CHECK(worst_error(y, c.reference) < 1e-2);
}

}  // namespace

TEST_CASE("CUDA NVFP4 pack and fake-quant: bit-exact with the CPU reference") {
  if (!gpu()) return;
  uint64_t seed = 600;
  for (const auto dtype : {torch::kBFloat16, torch::kFloat32}) {
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 16}, {7, 48}, {129, 2064}, {300, 512}}) {
      for (const bool given : {false, true}) {
        CAPTURE(dtype);
        CAPTURE(rows);
        CAPTURE(cols);
        CAPTURE(given);
        torch::manual_seed(++seed);
        const torch::Tensor w = weight(rows, cols, dtype);
        const std::optional<float> g = given ? std::optional<float>(nvfp4_global_scale(w) * 0.75f) : std::nullopt;
        const Nvfp4Weight cpu = nvfp4_quantize(w, g);
        const Nvfp4Weight gpu_q = nvfp4_quantize(w.cuda(), g);
        CHECK(gpu_q.packed.is_cuda());
        CHECK(same_bits(gpu_q.packed, cpu.packed));
        CHECK(same_bits(gpu_q.block_scale, cpu.block_scale));
        CHECK(same_bits(gpu_q.global_scale, cpu.global_scale));
        CHECK(nvfp4_global_scale(w.cuda()) == nvfp4_global_scale(w));
        CHECK(same_bits(nvfp4_fake_quantize(w.cuda(), g), nvfp4_fake_quantize(w, g)));
        for (const auto out : {torch::kBFloat16, torch::kFloat32})
          CHECK(same_bits(nvfp4_dequantize(gpu_q.packed, gpu_q.block_scale, gpu_q.global_scale, out),
                          nvfp4_dequantize(cpu.packed, cpu.block_scale, cpu.global_scale, out)));
      }
    }
  }
}

TEST_CASE("CUDA MXFP4 pack and fake-quant: bit-exact with the CPU reference, both scale rules") {
  if (!gpu()) return;
  uint64_t seed = 650;
  for (const auto dtype : {torch::kBFloat16, torch::kFloat32}) {
    for (const auto rule : {MxScaleRule::compressed_tensors, MxScaleRule::ocp}) {
      for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 32}, {9, 96}, {131, 2080}}) {
        CAPTURE(dtype);
        CAPTURE(rows);
        CAPTURE(cols);
        torch::manual_seed(++seed);
        const torch::Tensor w = weight(rows, cols, dtype);
        const Mxfp4Weight cpu = mxfp4_quantize(w, rule);
        const Mxfp4Weight gpu_q = mxfp4_quantize(w.cuda(), rule);
        CHECK(same_bits(gpu_q.packed, cpu.packed));
        CHECK(same_bits(gpu_q.scale, cpu.scale));
        CHECK(same_bits(mxfp4_fake_quantize(w.cuda(), rule), mxfp4_fake_quantize(w, rule)));
        for (const auto out : {torch::kBFloat16, torch::kFloat32})
          CHECK(same_bits(mxfp4_dequantize(gpu_q.packed, gpu_q.scale, out), mxfp4_dequantize(cpu.packed, cpu.scale, out)));
      }
    }
  }
}

TEST_CASE("CUDA quantization error sums and batched global scales == the CPU path") {
  if (!gpu()) return;
  torch::manual_seed(870);
  std::vector<torch::Tensor> ws, ws_cuda;
  for (const bool nvfp4 : {true, false}) {
    for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
      CAPTURE(nvfp4);
      const torch::Tensor w = weight(37, 96, dtype);
      const Fp4Weight codes = quantized(w, nvfp4);
      const torch::Tensor cpu = fp4_error_sums(w, codes);
      const torch::Tensor gpu_sums = fp4_error_sums(w.cuda(), codes.to(torch::kCUDA));
      CHECK(gpu_sums.is_cuda());
      CHECK(gpu_sums[0].item<double>() == doctest::Approx(cpu[0].item<double>()).epsilon(1e-12));
      CHECK(gpu_sums[1].item<double>() == doctest::Approx(cpu[1].item<double>()).epsilon(1e-12));
      ws.push_back(w);
      ws_cuda.push_back(w.cuda());
    }
  }
  const std::vector<float> gs = nvfp4_global_scales(ws_cuda);
  REQUIRE(gs.size() == ws.size());
  for (size_t i = 0; i < ws.size(); ++i) CHECK(gs[i] == nvfp4_global_scale(ws[i]));
}

TEST_CASE("CUDA straight-through fake-quant: the CPU value, identity gradient") {
  if (!gpu()) return;
  torch::manual_seed(670);
  const torch::Tensor w = weight(40, 256, torch::kBFloat16).cuda().requires_grad_(true);
  const float g = nvfp4_global_scale(w.detach());
  const torch::Tensor q = nvfp4_fake_quantize_ste(w, g);
  CHECK(same_bits(q.detach(), nvfp4_fake_quantize(w.detach().cpu(), g)));
  const torch::Tensor upstream = torch::randn({40, 256}).to(torch::kBFloat16).cuda();
  CHECK(same_bits(torch::autograd::grad({q}, {w}, {upstream})[0], upstream));
}

TEST_CASE("CUDA W4A16 linear: within bf16 rounding of an fp32 x · dequant(W)^T, decode rows and beyond") {
  if (!gpu()) return;
  uint64_t seed = 800;
  // K tails of 32 (416, 2080, 32), 64 (320) and 96 (224) past the last
  // 128-wide step; 8320 gives each warp of the decode kernel more steps than
  // its ring holds, unevenly.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{5, 32},    {131, 416},  {40, 320},  {17, 224},
                                                           {1000, 2080}, {256, 4096}, {24, 8320}};
  for (const bool nvfp4 : {true, false}) {
    for (const int64_t M : {1, 2, 5, 8, 9, 16, 17, 32, 33, 64, 65, 300}) {
      for (const auto& [N, K] : shapes) {
        // Rows <= 32 go to the decode kernel (its variants); the general
        // kernel is checked on rows <= 16 too; past 64 rows the prefill
        // kernel.
        using cuda::DecodeKernel;
        for (const DecodeKernel kernel :
             {DecodeKernel::narrow, DecodeKernel::wide, DecodeKernel::compact, DecodeKernel::general}) {
          if ((kernel == DecodeKernel::wide && M > 8) || (kernel == DecodeKernel::general && M > 16) ||
              (kernel == DecodeKernel::compact && M > 16))
            continue;
          CAPTURE(nvfp4);
          CAPTURE(M);
          CAPTURE(N);
          CAPTURE(K);
          CAPTURE(static_cast<int>(kernel));
          const LinearCase c = linear_case(M, N, K, nvfp4, ++seed);
          const torch::Tensor y = [&] {
            const cuda::KernelChoices restore;
            cuda::fp4_select_decode_kernel(kernel);
            return fp4_linear(c.x.cuda(), c.cpu.to(torch::kCUDA), c.bias.cuda());
          }();
          check_against(y, c);
        }
      }
    }
  }
}

namespace {

// fp4_linear past 64 rows through one prefill path against fp32
// x · dequant(W)^T + b. K tails past the last 64-wide stage of 16 (80,
// NVFP4 only), 32 (96, 2080) and none (4096); N not a multiple of the
// 128-row tile, odd (77: scalar stores) or one row past it (129). Small
// grids of tiles with K >= 512 are split over K (fp4_prefill_splits: 200 x
// 2080, 256 x 4096); 2000 x 160 is one split.
void check_prefill(cuda::PrefillPath path, cuda::PrefillKernel kernel, uint64_t seed) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{77, 80}, {129, 96}, {200, 2080}, {256, 4096}, {2000, 160}};
  for (const bool nvfp4 : {true, false}) {
    for (const int64_t M : {65, 127, 128, 129, 300, 1100}) {
      for (const auto& [N, K] : shapes) {
        if (!nvfp4 && K % 32 != 0) continue;
        CAPTURE(nvfp4);
        CAPTURE(M);
        CAPTURE(N);
        CAPTURE(K);
        const LinearCase c = linear_case(M, N, K, nvfp4, ++seed);
        const torch::Tensor y = [&] {
          const cuda::KernelChoices restore;
          cuda::set_prefill_path(path);
          cuda::fp4_select_prefill_kernel(kernel);
          return fp4_linear(c.x.cuda(), c.cpu.to(torch::kCUDA), c.bias.cuda());
        }();
        check_against(y, c);
      }
    }
  }
}

}  // namespace

// All of the wgmma kernel's checks sit in this one case, which
// bench/gpu_all.sh runs in a process of its own first.
TEST_CASE("CUDA W4A16 prefill, wgmma kernel (v2): vs fp32 x · dequant(W)^T, ragged M, N and K; grouped") {
  if (!gpu()) return;
  check_prefill(cuda::PrefillPath::in_register, cuda::PrefillKernel::wgmma, 830);
  // Grouped over experts: 5 experts, expert 1 without rows, the others 1
  // to 3 tiles of 128 rows (ragged), K a multiple of 32 but not of 64.
  for (const bool nvfp4 : {true, false}) {
    CAPTURE(nvfp4);
    torch::manual_seed(nvfp4 ? 860 : 861);
    const int64_t E = 5, N = 136, K = 224;
    const torch::Tensor w = (torch::randn({E, N, K}) * 0.1).to(torch::kBFloat16);
    const cuda::Fp4Experts q = cuda::quantize_experts(w.cuda(), nvfp4);
    const torch::Tensor counts = torch::tensor({130, 0, 257, 1, 300}, torch::kInt);
    cuda::ExpertRouting routing;
    routing.offsets = torch::cat({torch::zeros({1}, torch::kInt), counts.cumsum(0).to(torch::kInt)}).cuda();
    const int64_t rows = counts.sum().item<int64_t>();
    const torch::Tensor x = torch::randn({rows, K}).to(torch::kBFloat16);
    const torch::Tensor y = [&] {
      const cuda::KernelChoices restore;
      cuda::fp4_select_prefill_kernel(cuda::PrefillKernel::wgmma);
      return cuda::fp4_grouped_linear(x.cuda(), routing, q, rows / E).cpu();
    }();
    int64_t begin = 0;
    for (int64_t e = 0; e < E; ++e) {
      const int64_t n = counts[e].item<int64_t>();
      if (n == 0) continue;
      // The expert's CPU packing (bit-equal to the stacked one: the "CUDA experts" case).
      const torch::Tensor dense = fp4_dequantize(quantized(w[e], nvfp4), torch::kFloat);
      const torch::Tensor expected = torch::matmul(x.narrow(0, begin, n).to(torch::kFloat), dense.t());
      CAPTURE(e);
      CHECK(relative_error(y.narrow(0, begin, n), expected) < 1e-2);
      CHECK(worst_error(y.narrow(0, begin, n), expected) < 1e-2);
      begin += n;
    }
  }
}

TEST_CASE("CUDA W4A16 prefill, mma.sync kernel (v1) and the dequantize path: vs fp32 x · dequant(W)^T") {
  if (!gpu()) return;
  check_prefill(cuda::PrefillPath::in_register, cuda::PrefillKernel::mma_sync, 820);
  check_prefill(cuda::PrefillPath::dequantize, cuda::PrefillKernel::automatic, 840);
  // Straight through the launcher: a misaligned x is refused, not read.
  const Fp4Weight w = quantized(torch::randn({8, 64}), true).to(torch::kCUDA);
  const torch::Tensor x = torch::randn({130, 64}, torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA));
  torch::Tensor y = torch::empty({129, 8}, x.options());
  const auto* misaligned = reinterpret_cast<const __nv_bfloat16*>(x.data_ptr()) + 1;
  CHECK(cuda::fp4_prefill_matmul_bf16(misaligned, nullptr, 1, 129, 64, reinterpret_cast<const uint8_t*>(w.packed.data_ptr()),
                                      reinterpret_cast<const uint8_t*>(w.scale.data_ptr()),
                                      w.global_scale.data_ptr<float>(), 8, nullptr,
                                      reinterpret_cast<__nv_bfloat16*>(y.data_ptr()), nullptr) ==
        cudaErrorMisalignedAddress);
}

TEST_CASE("CUDA W4A16 linear: K an odd multiple of 16 (NVFP4), 3-D input, gradient to x and bias") {
  if (!gpu()) return;
  torch::manual_seed(850);
  const Fp4Weight cpu = quantized(torch::randn({77, 208}) * 0.2, true);
  const torch::Tensor x = torch::randn({2, 3, 208}).to(torch::kBFloat16);
  const torch::Tensor bias = torch::randn({77}).to(torch::kBFloat16);
  const torch::Tensor dense = fp4_dequantize(cpu, torch::kFloat);
  const torch::Tensor reference = torch::matmul(x.to(torch::kFloat), dense.t()) + bias.to(torch::kFloat);
  const torch::Tensor xg = x.cuda().requires_grad_(true), bg = bias.cuda().requires_grad_(true);
  const torch::Tensor y = fp4_linear(xg, cpu.to(torch::kCUDA), bg);
  CHECK(relative_error(y.detach(), reference) < 1e-2);
  const torch::Tensor upstream = torch::randn({2, 3, 77}).to(torch::kBFloat16);
  const auto grads = torch::autograd::grad({y}, {xg, bg}, {upstream.cuda()});
  CHECK(relative_error(grads[0], torch::matmul(upstream.to(torch::kFloat), dense)) < 1e-2);
  CHECK(relative_error(grads[1], upstream.to(torch::kFloat).sum(std::vector<int64_t>{0, 1})) < 1e-2);
}

TEST_CASE("CUDA W4A16 linear with gradients: no bias, NVFP4 and MXFP4 (no global scale)") {
  if (!gpu()) return;
  torch::manual_seed(851);
  for (const bool nvfp4 : {true, false}) {
    CAPTURE(nvfp4);
    const Fp4Weight cpu = quantized(torch::randn({45, 192}) * 0.2, nvfp4);
    const torch::Tensor x = torch::randn({5, 192}).to(torch::kBFloat16);
    const torch::Tensor dense = fp4_dequantize(cpu, torch::kFloat);
    const torch::Tensor xg = x.cuda().requires_grad_(true);
    const torch::Tensor y = fp4_linear(xg, cpu.to(torch::kCUDA), torch::Tensor());
    CHECK(relative_error(y.detach(), torch::matmul(x.to(torch::kFloat), dense.t())) < 1e-2);
    const torch::Tensor upstream = torch::randn({5, 45}).to(torch::kBFloat16);
    const auto grads = torch::autograd::grad({y}, {xg}, {upstream.cuda()});
    CHECK(relative_error(grads[0], torch::matmul(upstream.to(torch::kFloat), dense)) < 1e-2);
  }
}

