// The CUDA MoE expert kernels against the CPU reference, on a GPU host
// (QERL_CUDA builds), on fresh seeded inputs: stacked expert packing bit for
// bit with each expert's CPU packing; the grouped W4A16 and bf16 matmuls
// (every decode variant, experts with no rows, more tiles than warps)
// within bf16 rounding of fp32 x · dequant(W_e)ᵀ; the whole experts
// forward (sort, gate/up, SwiGLU, down, top-k mix) against a per-token
// loop. Without a visible GPU every case says so.
#include "torch_doctest.hpp"  // first: see there

#include <vector>

#include "kernels/cuda/fp4_cuda.hpp"
#include "kernels/cuda/fp4_cuda_torch.hpp"
#include "kernels/cuda/kernel_choices.hpp"
#include "kernels/fp4_linear.hpp"
#include "kernels/quantize_tensor.hpp"
#include "tests/kernels/fp4_weights.hpp"

using namespace qerl::kernels;

namespace {

bool gpu() { return test::cuda_visible("the CUDA fp4 expert kernels"); }

using test::quantized;
using test::relative_error;
using test::same_bits;
using test::worst_error;

// Expert weights [E, N, K] and the per-expert CPU reference of their codes.
std::vector<Fp4Weight> per_expert(const torch::Tensor& w, bool nvfp4) {
  std::vector<Fp4Weight> out;
  for (int64_t e = 0; e < w.size(0); ++e) out.push_back(quantized(w[e], nvfp4));
  return out;
}

}  // namespace

TEST_CASE("CUDA experts: stacked packing equals each expert's CPU packing; grouped matmul with empty experts") {
  if (!gpu()) return;
  uint64_t seed = 900;
  for (const bool nvfp4 : {true, false}) {
    CAPTURE(nvfp4);
    torch::manual_seed(++seed);
    const int64_t E = 7, N = 72, K = 160;
    const torch::Tensor w = (torch::randn({E, N, K}) * 0.1).to(torch::kBFloat16);
    const cuda::Fp4Experts q = cuda::quantize_experts(w.cuda(), nvfp4);
    const std::vector<Fp4Weight> ref = per_expert(w, nvfp4);
    for (int64_t e = 0; e < E; ++e) {
      CHECK(same_bits(q.packed[e], ref[e].packed));
      CHECK(same_bits(q.scale[e], ref[e].scale));
      if (nvfp4) CHECK(same_bits(q.global_scale[e].reshape({1}), ref[e].global_scale));
    }
    // Routing: tokens pick experts 0, 2, 3, 6 only (1, 4, 5 get none); expert 3 gets 70 rows.
    const int64_t T = 50, top_k = 2;
    const torch::Tensor choices = torch::tensor({0, 2, 3, 3, 6}, torch::kLong);
    const torch::Tensor indices = choices.index({torch::randint(0, 5, {T, top_k}, torch::kLong)});
    const cuda::ExpertRouting routing = cuda::sort_by_expert(indices.cuda(), E);
    const torch::Tensor x = torch::randn({T * top_k, K}).to(torch::kBFloat16);
    const torch::Tensor order = routing.order.cpu();
    const torch::Tensor sorted_experts = indices.reshape({-1}).index({order});
    // Rows hint 4: the decode kernel (expert 3's 70 rows in 9 passes of 8),
    // its wide, compact and stream variants (compact and stream also at
    // hint 12: stream's 16-row passes), then the
    // general one; hint 12: 5 passes of 16; hint
    // 28 (automatic): the decode kernel in passes of 16; hint 48: the
    // general kernel; hint 80: the prefill kernel (expert 3's rows and the
    // others' in one 128-row tile each, empty experts no tile; the wgmma
    // kernel has its own case).
    using cuda::DecodeKernel;
    using cuda::PrefillKernel;
    struct Choice {
      DecodeKernel decode;
      int64_t rows_hint;
      PrefillKernel prefill;
    };
    const std::vector<Choice> choices_of_kernel = {
        {DecodeKernel::narrow, 4, PrefillKernel::automatic},     {DecodeKernel::wide, 4, PrefillKernel::automatic},
        {DecodeKernel::compact, 4, PrefillKernel::automatic},    {DecodeKernel::compact, 12, PrefillKernel::automatic},
        {DecodeKernel::stream, 4, PrefillKernel::automatic},     {DecodeKernel::stream, 12, PrefillKernel::automatic},
        {DecodeKernel::general, 4, PrefillKernel::automatic},    {DecodeKernel::narrow, 12, PrefillKernel::automatic},
        {DecodeKernel::automatic, 28, PrefillKernel::automatic}, {DecodeKernel::automatic, 48, PrefillKernel::automatic},
        {DecodeKernel::automatic, 80, PrefillKernel::mma_sync}};
    for (const Choice& choice : choices_of_kernel) {
      CAPTURE(static_cast<int>(choice.decode));
      CAPTURE(choice.rows_hint);
      CAPTURE(static_cast<int>(choice.prefill));
      const torch::Tensor y = [&] {
        const cuda::KernelChoices restore;
        cuda::fp4_select_decode_kernel(choice.decode);
        cuda::fp4_select_prefill_kernel(choice.prefill);
        return cuda::fp4_grouped_linear(x.cuda(), routing, q, choice.rows_hint).cpu();
      }();
      for (int64_t r = 0; r < T * top_k; ++r) {
        const int64_t e = sorted_experts[r].item<int64_t>();
        const torch::Tensor expected =
            torch::matmul(x[r].to(torch::kFloat), fp4_dequantize(ref[e], torch::kFloat).t());
        if (relative_error(y[r], expected) >= 1e-2) {
          FAIL_CHECK("row " << r << " of expert " << e << " off by " << relative_error(y[r], expected));
          break;
        }
      }
    }
    // offsets: counts per expert, from the device, in order.
    const torch::Tensor counts = torch::bincount(indices.reshape({-1}), {}, E).to(torch::kInt);
    CHECK(torch::equal(routing.offsets.cpu().narrow(0, 1, E) - routing.offsets.cpu().narrow(0, 0, E), counts));
  }
}

TEST_CASE("CUDA grouped decode kernels (W4A16 and bf16) with more tiles than the stream variant's warps, vs fp32") {
  if (!gpu()) return;
  // 40 experts x 65 tiles of 16 rows (N = 1040) = 2600 tiles: more than a
  // full grid of the stream variant's persistent warps (2 blocks of 8 per
  // SM, 2112 on 132 SMs), so warps walk several tiles; K = 448: three
  // 128-wide steps and a tail of 64. Only even experts get rows (odd ones
  // none), expert 2 gets 24 (two 16-row passes at hint 12, three 8-row
  // passes at hint 4).
  uint64_t seed = 930;
  const int64_t E = 40, N = 1040, K = 448, T = 60, top_k = 4;
  for (const bool nvfp4 : {true, false}) {
    CAPTURE(nvfp4);
    torch::manual_seed(++seed);
    const torch::Tensor w = (torch::randn({E, N, K}) * 0.05).to(torch::kBFloat16).cuda();
    const cuda::Fp4Experts q = cuda::quantize_experts(w, nvfp4);
    torch::Tensor indices = torch::randint(0, E / 2, {T, top_k}, torch::kLong) * 2;
    indices.index_put_({torch::indexing::Slice(0, 24), 0}, 2);
    const cuda::ExpertRouting routing = cuda::sort_by_expert(indices.cuda(), E);
    const torch::Tensor x = torch::randn({T * top_k, K}).to(torch::kBFloat16).cuda();
    const torch::Tensor offsets = routing.offsets.cpu();
    // The reference: each expert's rows times its dequantized weight, fp32.
    torch::Tensor expected = torch::zeros({T * top_k, N}, torch::kFloat);
    for (int64_t e = 0; e < E; ++e) {
      const int64_t begin = offsets[e].item<int64_t>(), end = offsets[e + 1].item<int64_t>();
      if (begin == end) continue;
      const torch::Tensor dense = nvfp4 ? cuda::nvfp4_dequantize(q.packed[e], q.scale[e], q.global_scale[e],
                                                                  torch::kFloat)
                                        : cuda::mxfp4_dequantize(q.packed[e], q.scale[e], torch::kFloat);
      expected.narrow(0, begin, end - begin)
          .copy_(torch::matmul(x.narrow(0, begin, end - begin).to(torch::kFloat), dense.t()).cpu());
    }
    // The bf16 twin on the same rows, against the bf16 weights in fp32 (K = 448: seven 64-wide steps).
    torch::Tensor expected_bf16 = torch::zeros({T * top_k, N}, torch::kFloat);
    for (int64_t e = 0; e < E; ++e) {
      const int64_t begin = offsets[e].item<int64_t>(), end = offsets[e + 1].item<int64_t>();
      if (begin < end)
        expected_bf16.narrow(0, begin, end - begin)
            .copy_(torch::matmul(x.narrow(0, begin, end - begin).to(torch::kFloat), w[e].to(torch::kFloat).t()).cpu());
    }
    for (const int64_t hint : {4, 12}) {
      CAPTURE(hint);
      const torch::Tensor y = cuda::bf16_grouped_linear(x, routing, w, hint);
      CHECK(relative_error(y, expected_bf16) < 1e-2);
      CHECK(worst_error(y, expected_bf16) < 2e-2);
    }
    using cuda::DecodeKernel;
    for (const DecodeKernel kernel : {DecodeKernel::stream, DecodeKernel::narrow, DecodeKernel::compact}) {
      for (const int64_t hint : {4, 12}) {
        CAPTURE(static_cast<int>(kernel));
        CAPTURE(hint);
        const torch::Tensor y = [&] {
          const cuda::KernelChoices restore;
          cuda::fp4_select_decode_kernel(kernel);
          return cuda::fp4_grouped_linear(x, routing, q, hint);
        }();
        CHECK(relative_error(y, expected) < 1e-2);
        CHECK(worst_error(y, expected) < 2e-2);
      }
    }
  }
}

TEST_CASE("CUDA MoE experts forward (sorted on the device, grouped gate/up and down, top-k mix) vs a per-token loop") {
  if (!gpu()) return;
  uint64_t seed = 950;
  for (const int mode : {0, 1, 2, 3}) {  // bf16 (_grouped_mm), NVFP4, MXFP4, bf16 (stream kernel up to 16 rows)
    for (const int64_t T : {1, 9, 300, 700}) {  // 700: ~233 rows per expert, two prefill tiles each
      CAPTURE(mode);
      CAPTURE(T);
      torch::manual_seed(++seed);
      const int64_t E = 12, H = 128, I = 96, top_k = 4;
      const torch::Tensor gate_up = (torch::randn({E, 2 * I, H}) * 0.1).to(torch::kBFloat16);
      const torch::Tensor down = (torch::randn({E, H, I}) * 0.1).to(torch::kBFloat16);
      const torch::Tensor x = torch::randn({T, H}).to(torch::kBFloat16);
      const torch::Tensor probs = torch::softmax(torch::randn({T, E}), -1);
      auto [weights, indices] = probs.topk(top_k, -1);
      weights = weights / weights.sum(-1, true);
      cuda::MoeExperts experts;
      torch::Tensor gu_ref = gate_up.to(torch::kFloat), down_ref = down.to(torch::kFloat);
      if (mode == 0 || mode == 3) {
        experts.gate_up_bf16 = gate_up.cuda();
        experts.down_bf16 = down.cuda();
      } else {
        experts.gate_up = cuda::quantize_experts(gate_up.cuda(), mode == 1);
        experts.down = cuda::quantize_experts(down.cuda(), mode == 1);
        const auto gu = per_expert(gate_up, mode == 1), dn = per_expert(down, mode == 1);
        for (int64_t e = 0; e < E; ++e) {
          gu_ref[e] = fp4_dequantize(gu[e], torch::kFloat);
          down_ref[e] = fp4_dequantize(dn[e], torch::kFloat);
        }
      }
      const torch::Tensor out = [&] {
        const cuda::KernelChoices restore;
        cuda::set_bf16_experts_kernel(mode == 3 ? cuda::Bf16ExpertsKernel::stream
                                                : cuda::Bf16ExpertsKernel::grouped_mm);
        return cuda::moe_experts_forward(x.cuda(), indices.cuda(), weights.cuda(), experts);
      }();
      torch::Tensor expected = torch::zeros({T, H});
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t s = 0; s < top_k; ++s) {
          const int64_t e = indices[t][s].item<int64_t>();
          const torch::Tensor h = torch::matmul(gu_ref[e], x[t].to(torch::kFloat));
          const torch::Tensor act = torch::silu(h.narrow(0, 0, I)) * h.narrow(0, I, I);
          expected[t] += weights[t][s] * torch::matmul(down_ref[e], act);
        }
      }
      CHECK(out.sizes() == expected.sizes());
      CHECK(relative_error(out, expected) < 2e-2);

    }
  }
}
