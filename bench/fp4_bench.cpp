// fp4_bench: the CUDA fp4 kernels against the ceilings measured in the same
// run (device-to-device copy bandwidth, bf16 torch::matmul rate) and against
// LibTorch/cuBLAS bf16 baselines, on the shapes of issue 15. Prints
// markdown tables. Built in QERL_CUDA builds; run by bench/gpu_bench.sh.
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/ops/_grouped_mm.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench/cuda_timing.hpp"
#include "kernels/cuda/fp4_cuda.hpp"
#include "kernels/cuda/fp4_cuda_torch.hpp"
#include "kernels/cuda/kernel_choices.hpp"
#include "kernels/fp4_linear.hpp"
#include "kernels/quantize_tensor.hpp"

using namespace qerl::kernels;
using namespace qerl::bench;

namespace {

// How many copies of an input of `bytes` make repeated calls read from DRAM:
// together at least three times the L2 cache.
int copies_for(double bytes) {
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  return std::max(1, static_cast<int>(std::ceil(3.0 * prop.l2CacheSize / bytes)));
}



void formats(double copy_gbs) {
  std::printf("\n## Pack and fake-quant (bf16 weights)\n\n");
  std::printf("Times are GPU time per call (CUDA graph replay), except the amax row, whose host read of the scale "
              "makes it eager.\n\n");
  std::printf("| weight | op | time (us) | bytes moved (MB) | GB/s | %% of copy |\n|---|---|---|---|---|---|\n");
  struct Shape { const char* name; std::vector<int64_t> sizes; };
  for (const Shape& s : {Shape{"4096x14336", {4096, 14336}}, Shape{"60x(2816x2048) experts", {60, 2816, 2048}}}) {
    torch::manual_seed(1);
    const torch::Tensor w = (torch::randn(s.sizes, bf16_cuda()) * 0.02);
    const torch::Tensor w2 = w.dim() == 3 ? w.reshape({-1, w.size(-1)}) : w;
    const double n = static_cast<double>(w.numel());
    const bool experts = w.dim() == 3;
    const float g = nvfp4_global_scale(w2);
    struct Op { const char* name; double bytes; bool host_read; std::function<void(int)> fn; };
    std::vector<Op> ops = {
        {"amax (global-scale reduction)", 2 * n, true, [&](int) { (void)cuda::nvfp4_global_scale(w2); }},
        {"NVFP4 pack, G given", n * (2 + 0.5 + 1.0 / 16), false, [&](int) { cuda::nvfp4_quantize(w2, g); }},
        {"NVFP4 pack incl. amax pass", n * (2 + 0.5 + 1.0 / 16), false,
         [&](int) { if (experts) cuda::quantize_experts(w, true); else cuda::nvfp4_quantize(w2, std::nullopt); }},
        {"NVFP4 fake-quant, G given", n * 4, false, [&](int) { cuda::nvfp4_fake_quantize(w2, g); }},
        {"MXFP4 pack", n * (2 + 0.5 + 1.0 / 32), false,
         [&](int) { cuda::mxfp4_quantize(w2, MxScaleRule::compressed_tensors); }},
        {"MXFP4 fake-quant", n * 4, false,
         [&](int) { cuda::mxfp4_fake_quantize(w2, MxScaleRule::compressed_tensors); }},
    };
    for (const Op& op : ops) {
      const double us = op.host_read ? eager_us(op.fn, 5) : graph_us(op.fn, 5);
      const double gbs = op.bytes / us / 1e3;
      std::printf("| %s | %s | %.1f | %.1f | %.0f | %.1f %% |\n", s.name, op.name, us, op.bytes / 1e6, gbs,
                  100.0 * gbs / copy_gbs);
    }
    if (!experts) {  // the path before this issue: the CPU reference, copied there and back
      const auto t0 = std::chrono::steady_clock::now();
      const torch::Tensor cpu_fq = nvfp4_fake_quantize(w2.cpu(), g).cuda();
      torch::cuda::synchronize();
      const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      std::printf("| %s | NVFP4 fake-quant, before: CPU reference + copies | %.0f | %.1f | %.1f | %.2f %% |\n", s.name,
                  us, n * 4 / 1e6, n * 4 / us / 1e3, 100.0 * n * 4 / us / 1e3 / copy_gbs);
    }
  }
}

Fp4Weight clone(const Fp4Weight& w) {
  return {w.packed.clone(), w.scale.clone(), w.global_scale.defined() ? w.global_scale.clone() : torch::Tensor()};
}

// QERL_BENCH_SKIP_WGMMA=1 (bench/gpu_all.sh, when the wgmma kernel failed its test) leaves it out.
bool wgmma_runs() {
  const char* skip = std::getenv("QERL_BENCH_SKIP_WGMMA");
  return skip == nullptr || std::string(skip) != "1";
}

// GPU time of fn (graph replay) with the in-register prefill path and the given kernel.
double in_register_us(cuda::PrefillKernel kernel, const std::function<void(int)>& fn, int calls = 20) {
  const cuda::KernelChoices restore;
  cuda::set_prefill_path(cuda::PrefillPath::in_register);
  cuda::fp4_select_prefill_kernel(kernel);
  return graph_us(fn, calls);
}

void matmuls(double copy_gbs, double tflops) {
  std::printf("\n## W4A16 matmul vs bf16 torch::matmul (cuBLAS)\n\n");
  std::printf("GPU time per call (CUDA graph replay, weights rotated over copies that exceed L2 three times); "
              "'eager' is the same NVFP4 call timed back to back without a graph (host dispatch included).\n\n");
  std::printf("NVFP4 and MXFP4: the default kernel choice; at M <= 32 the same NVFP4 call also through the "
              "general tile kernel (v4) and the decode kernel's narrow (8 warps, 4 K steps in flight each; at "
              "M = 32 one pass of four x tiles), wide (M <= 8: 12 warps of <= 85 registers) and compact (M <= 16: "
              "4 warps, 4 blocks per SM) variants. At M > 64 the "
              "default is the dequantize path (W written to a bf16 temporary, then cuBLAS); the in-register "
              "prefill kernels, v2 (wgmma) and v1 (mma.sync), are timed beside it.\n\n");
  std::printf("| N x K | M | bf16 (us) | NVFP4 (us) | speed-up | MXFP4 (us) | speed-up | NVFP4 v4 (us) | "
              "NVFP4 narrow (us) | NVFP4 wide (us) | NVFP4 compact (us) | NVFP4 prefill v2 wgmma (us) | speed-up | "
              "NVFP4 prefill v1 mma.sync (us) | speed-up | "
              "NVFP4 eager (us) | NVFP4 %% of BW floor | NVFP4 %% of bf16 matmul rate |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  // The shapes, then the A2.7B attention projection's.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {4096, 4096}, {14336, 4096}, {4096, 14336}, {2816, 2048}, {2048, 1408}, {2048, 2048}};
  for (const auto& [N, K] : shapes) {
    torch::manual_seed(2);
    const torch::Tensor w = torch::randn({N, K}, bf16_cuda()) * 0.02;
    const Nvfp4Weight nq = nvfp4_quantize(w);
    const Mxfp4Weight mq = mxfp4_quantize(w);
    const Fp4Weight nv{nq.packed, nq.block_scale, nq.global_scale}, mx{mq.packed, mq.scale, torch::Tensor()};
    std::vector<torch::Tensor> ws{w};
    std::vector<Fp4Weight> nvs{nv}, mxs{mx};
    while (static_cast<int>(ws.size()) < copies_for(2.0 * N * K)) ws.push_back(w.clone());
    while (static_cast<int>(nvs.size()) < copies_for(static_cast<double>(nv.bytes()))) {
      nvs.push_back(clone(nv));
      mxs.push_back(clone(mx));
    }
    const auto n_ws = ws.size(), n_fp4 = nvs.size();
    for (const int64_t M : {1, 4, 16, 32, 64, 256, 1024, 4096}) {
      const torch::Tensor x = torch::randn({M, K}, bf16_cuda());
      const torch::Tensor none;
      const double t_bf16 = graph_us([&](int i) { torch::matmul(x, ws[i % n_ws].t()); });
      const double t_nv = graph_us([&](int i) { fp4_linear(x, nvs[i % n_fp4], none); });
      const double t_mx = graph_us([&](int i) { fp4_linear(x, mxs[i % n_fp4], none); });
      const double t_eager = eager_us([&](int i) { fp4_linear(x, nvs[i % n_fp4], none); });
      // The same call through a given kernel (up to max_rows; "-" beyond).
      auto through = [&](cuda::DecodeKernel kernel, int64_t max_rows) {
        if (M > max_rows) return std::nan("");
        const cuda::KernelChoices restore;
        cuda::fp4_select_decode_kernel(kernel);
        return graph_us([&](int i) { fp4_linear(x, nvs[i % n_fp4], none); });
      };
      const double t_v4 = through(cuda::DecodeKernel::general, 32), t_narrow = through(cuda::DecodeKernel::narrow, 32),
                   t_wide = through(cuda::DecodeKernel::wide, 8), t_compact = through(cuda::DecodeKernel::compact, 16);
      double t_v1 = std::nan(""), t_wgmma = std::nan("");
      if (M > cuda::decode_rows_max) {
        t_v1 = in_register_us(cuda::PrefillKernel::mma_sync, [&](int i) { fp4_linear(x, nvs[i % n_fp4], none); });
        if (wgmma_runs())
          t_wgmma = in_register_us(cuda::PrefillKernel::wgmma, [&](int i) { fp4_linear(x, nvs[i % n_fp4], none); });
      }
      const double floor_us = (static_cast<double>(nv.bytes()) + 2.0 * M * (K + N)) / copy_gbs / 1e3;
      const double flops_us = 2.0 * M * N * K / tflops / 1e6;
      std::printf("| %lldx%lld | %lld | %.1f | %.1f | %.2fx | %.1f | %.2fx | %.1f | %.1f | %.1f | %.1f | %.1f | %.2fx | "
                  "%.1f | %.2fx | %.1f | %.0f %% | %.0f %% |\n",
                  (long long)N, (long long)K, (long long)M, t_bf16, t_nv, t_bf16 / t_nv, t_mx, t_bf16 / t_mx, t_v4,
                  t_narrow, t_wide, t_compact, t_wgmma, t_bf16 / t_wgmma, t_v1, t_bf16 / t_v1, t_eager,
                  100 * floor_us / t_nv, 100 * flops_us / t_nv);
    }
  }
}

// Qwen1.5-MoE-A2.7B MoE layer: 60 experts top-4, hidden 2048, expert width
// 1408, shared expert 5632 (with its sigmoid gate).
void moe(double copy_gbs) {
  std::printf("\n## Qwen1.5-MoE-A2.7B MoE layer (60 experts top-4, H 2048, I 1408, shared 5632)\n\n");
  std::printf("Routing, experts, top-k mixing and the shared expert. Eager: back-to-back calls as LibTorch runs "
              "them (the loop reads per-expert counts on the host, so it cannot be graphed); graph: GPU time per "
              "call in a CUDA graph replay.\n\n");
  std::printf("| tokens | experts touched | per-expert loop bf16, eager (us) | grouped bf16, eager | "
              "grouped W4A16 NVFP4, eager | grouped bf16, graph | grouped W4A16, graph | same, decode kernel wide | "
              "same, decode kernel compact | same, decode kernel narrow | grouped bf16, _grouped_mm (graph) | "
              "same, prefill v2 wgmma | same, prefill v1 mma.sync | loop / grouped bf16 (eager) | "
              "bf16 / W4A16 (graph) | bf16 %% of floor | W4A16 %% of floor |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  const int64_t E = 60, H = 2048, I = 1408, S = 5632, top_k = 4;
  torch::manual_seed(3);
  const torch::Tensor gate_up = torch::randn({E, 2 * I, H}, bf16_cuda()) * 0.02;
  const torch::Tensor down = torch::randn({E, H, I}, bf16_cuda()) * 0.02;
  const torch::Tensor shared_gate_up = torch::randn({2 * S, H}, bf16_cuda()) * 0.02;
  const torch::Tensor shared_down = torch::randn({H, S}, bf16_cuda()) * 0.02;
  const torch::Tensor shared_gate = torch::randn({1, H}, bf16_cuda()) * 0.02;
  const torch::Tensor router = torch::randn({E, H}, bf16_cuda()) * 0.02;
  cuda::MoeExperts bf16_experts;
  bf16_experts.gate_up_bf16 = gate_up;
  bf16_experts.down_bf16 = down;
  cuda::MoeExperts fp4_experts;
  fp4_experts.gate_up = cuda::quantize_experts(gate_up, true);
  fp4_experts.down = cuda::quantize_experts(down, true);
  const Nvfp4Weight sgu = nvfp4_quantize(shared_gate_up), sd = nvfp4_quantize(shared_down);
  const Fp4Weight shared_gu_q{sgu.packed, sgu.block_scale, sgu.global_scale}, shared_d_q{sd.packed, sd.block_scale, sd.global_scale};
  const torch::Tensor none;

  auto swiglu = [&](const torch::Tensor& h) {
    const int64_t w = h.size(-1) / 2;
    return torch::silu(h.narrow(-1, 0, w)) * h.narrow(-1, w, w);
  };
  for (const int64_t T : {1, 32, 128, 2048}) {
    const torch::Tensor x = torch::randn({T, H}, bf16_cuda());
    auto route = [&] {
      const torch::Tensor probs = torch::softmax(torch::matmul(x, router.t()).to(torch::kFloat), -1);
      auto [wts, idx] = probs.topk(top_k, -1);
      return std::make_pair((wts / wts.sum(-1, true)).to(torch::kBFloat16), idx);
    };
    auto shared_bf16 = [&] {
      return torch::sigmoid(torch::matmul(x, shared_gate.t())) *
             torch::matmul(swiglu(torch::matmul(x, shared_gate_up.t())), shared_down.t());
    };
    // Today's path (models/nn/sparse_moe.cpp): sort, per-expert counts read on the host, a loop over experts.
    auto loop = [&] {
      auto [wts, idx] = route();
      const torch::Tensor flat = idx.reshape({-1});
      const torch::Tensor order = std::get<1>(flat.sort(true, 0, false));
      const torch::Tensor counts = torch::bincount(flat, {}, E).cpu();
      torch::Tensor outputs = torch::empty({T * top_k, H}, x.options());
      int64_t offset = 0;
      for (int64_t e = 0; e < E; ++e) {
        const int64_t n = counts[e].item<int64_t>();
        if (n == 0) continue;
        const torch::Tensor assignment = order.narrow(0, offset, n);
        offset += n;
        const torch::Tensor rows = x.index_select(0, torch::floor_divide(assignment, top_k));
        outputs.index_copy_(0, assignment, torch::matmul(swiglu(torch::matmul(rows, gate_up[e].t())), down[e].t()));
      }
      const torch::Tensor mixed = (outputs * wts.reshape({-1}).unsqueeze(-1)).view({T, top_k, H}).sum(1);
      return mixed + shared_bf16();
    };
    auto grouped_bf16 = [&] {
      auto [wts, idx] = route();
      return cuda::moe_experts_forward(x, idx, wts, bf16_experts) + shared_bf16();
    };
    auto grouped_fp4 = [&] {
      auto [wts, idx] = route();
      const torch::Tensor shared = torch::sigmoid(torch::matmul(x, shared_gate.t())) *
                                   fp4_linear(swiglu(fp4_linear(x, shared_gu_q, none)), shared_d_q, none);
      return cuda::moe_experts_forward(x, idx, wts, fp4_experts) + shared;
    };
    const double t_loop = eager_us([&](int) { loop(); }, 3);
    const double t_bf16_eager = eager_us([&](int) { grouped_bf16(); }, 10);
    const double t_fp4_eager = eager_us([&](int) { grouped_fp4(); }, 10);
    const double t_bf16 = graph_us([&](int) { grouped_bf16(); }, 5);
    const double t_fp4 = graph_us([&](int) { grouped_fp4(); }, 5);
    auto fp4_through = [&](cuda::DecodeKernel kernel) {
      const cuda::KernelChoices restore;
      cuda::fp4_select_decode_kernel(kernel);
      return graph_us([&](int) { grouped_fp4(); }, 5);
    };
    const double t_fp4_wide = fp4_through(cuda::DecodeKernel::wide);        // experts' rows <= 8: the wide variant
    const double t_fp4_compact = fp4_through(cuda::DecodeKernel::compact);  // rows <= 16: blocks of 4 warps
    const double t_fp4_narrow = fp4_through(cuda::DecodeKernel::narrow);    // rows <= 16: the earlier default
    const double t_bf16_grouped_mm = [&] {
      const cuda::KernelChoices restore;
      cuda::set_bf16_experts_kernel(cuda::Bf16ExpertsKernel::grouped_mm);  // LibTorch's, at every size
      return graph_us([&](int) { grouped_bf16(); }, 5);
    }();
    // The in-register prefill kernels change the experts' path past 64 rows per expert.
    const double t_fp4_v1 = in_register_us(cuda::PrefillKernel::mma_sync, [&](int) { grouped_fp4(); }, 5);
    const double t_fp4_wgmma =
        wgmma_runs() ? in_register_us(cuda::PrefillKernel::wgmma, [&](int) { grouped_fp4(); }, 5) : std::nan("");
    const int64_t touched = std::get<0>(at::_unique(route().second.reshape({-1}))).numel();
    const double expert_bf16 = 3.0 * I * H * 2, shared_bytes = 3.0 * S * H * 2;
    const double floor_bf16 = (touched * expert_bf16 + shared_bytes) / copy_gbs / 1e3;
    const double floor_fp4 = (touched * expert_bf16 + shared_bytes) * (0.5 + 1.0 / 16) / 2 / copy_gbs / 1e3;
    std::printf("| %lld | %lld | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.2fx | %.2fx | "
                "%.0f %% | %.0f %% |\n",
                (long long)T, (long long)touched, t_loop, t_bf16_eager, t_fp4_eager, t_bf16, t_fp4, t_fp4_wide,
                t_fp4_compact, t_fp4_narrow, t_bf16_grouped_mm, t_fp4_wgmma, t_fp4_v1, t_loop / t_bf16_eager, t_bf16 / t_fp4, 100 * floor_bf16 / t_bf16,
                100 * floor_fp4 / t_fp4);
  }
}

// The A2.7B experts' two grouped W4A16 projections alone at decode sizes,
// through each decode kernel variant, against the bandwidth floor of the
// codes and scales of the experts the tokens touch.
void expert_projections(double copy_gbs) {
  std::printf("\n## A2.7B grouped expert projections alone (NVFP4, graph), by decode kernel variant\n\n");
  std::printf("gate/up: 60 x (2816 x 2048); down: 60 x (2048 x 1408); tokens x top-4 rows sorted by expert. "
              "Floor: the touched experts' codes and scales / copy bandwidth.\n\n");
  std::printf("| tokens | experts touched | projection | NVFP4 floor (us) | NVFP4 narrow (us) | compact | "
              "stream (default) | stream %% of floor | narrow %% of floor | bf16 floor (us) | bf16 _grouped_mm (us) | "
              "bf16 stream kernel (us) | bf16 stream %% of floor | _grouped_mm %% of floor |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  const int64_t E = 60, H = 2048, I = 1408, top_k = 4;
  torch::manual_seed(5);
  const cuda::Fp4Experts gate_up = cuda::quantize_experts(torch::randn({E, 2 * I, H}, bf16_cuda()) * 0.02, true);
  const cuda::Fp4Experts down = cuda::quantize_experts(torch::randn({E, H, I}, bf16_cuda()) * 0.02, true);
  const torch::Tensor gate_up_bf16 = torch::randn({E, 2 * I, H}, bf16_cuda()) * 0.02;
  const torch::Tensor down_bf16 = torch::randn({E, H, I}, bf16_cuda()) * 0.02;
  for (const int64_t T : {1, 8, 32, 128}) {
    const torch::Tensor idx = std::get<1>(torch::rand({T, E}, bf16_cuda()).topk(top_k, -1));
    const cuda::ExpertRouting routing = cuda::sort_by_expert(idx, E);
    const int64_t touched = std::get<0>(at::_unique(idx.reshape({-1}))).numel();
    const int64_t hint = (2 * T * top_k + E - 1) / E;
    for (const bool first : {true, false}) {
      const cuda::Fp4Experts& w = first ? gate_up : down;
      const torch::Tensor& dense = first ? gate_up_bf16 : down_bf16;
      const int64_t N = w.packed.size(1), K = w.packed.size(2) * 2;
      const torch::Tensor x = torch::randn({T * top_k, K}, bf16_cuda());
      auto time = [&](cuda::DecodeKernel kernel) {
        const cuda::KernelChoices restore;
        cuda::fp4_select_decode_kernel(kernel);
        return graph_us([&](int) { cuda::fp4_grouped_linear(x, routing, w, hint); }, 20);
      };
      const double t_narrow = time(cuda::DecodeKernel::narrow), t_compact = time(cuda::DecodeKernel::compact),
                   t_stream = time(cuda::DecodeKernel::stream);
      const torch::Tensor ends = routing.offsets.narrow(0, 1, E);
      const double t_grouped_mm = graph_us([&](int) { at::_grouped_mm(x, dense.transpose(1, 2), ends); }, 20);
      const double t_bf16_stream = graph_us([&](int) { cuda::bf16_grouped_linear(x, routing, dense, hint); }, 20);
      const double floor = touched * N * K * (0.5 + 1.0 / 16) / copy_gbs / 1e3;
      const double floor_bf16 = touched * N * K * 2.0 / copy_gbs / 1e3;
      std::printf("| %lld | %lld | %s | %.1f | %.1f | %.1f | %.1f | %.0f %% | %.0f %% | %.1f | %.1f | %.1f | %.0f %% | "
                  "%.0f %% |\n",
                  (long long)T, (long long)touched, first ? "gate/up" : "down", floor, t_narrow, t_compact, t_stream,
                  100 * floor / t_stream, 100 * floor / t_narrow, floor_bf16, t_grouped_mm, t_bf16_stream,
                  100 * floor_bf16 / t_bf16_stream, 100 * floor_bf16 / t_grouped_mm);
    }
  }
}

}  // namespace

// `fp4_bench profile`: each kernel of the tables a few times on fresh
// inputs and nothing else, for ncu (bench/gpu_bench.sh with QERL_NCU=1).
int profile() {
  torch::manual_seed(4);
  {  // The two prefill kernels first, once each (ncu --launch-count 2 takes them).
    const cuda::KernelChoices restore;
    cuda::set_prefill_path(cuda::PrefillPath::in_register);
    const Nvfp4Weight q = nvfp4_quantize(torch::randn({4096, 4096}, bf16_cuda()) * 0.02);
    const Fp4Weight nv{q.packed, q.block_scale, q.global_scale};
    const torch::Tensor x = torch::randn({4096, 4096}, bf16_cuda());
    for (const auto kernel : {cuda::PrefillKernel::mma_sync, cuda::PrefillKernel::wgmma}) {
      cuda::fp4_select_prefill_kernel(kernel);
      fp4_linear(x, nv, torch::Tensor());
    }
  }
  const torch::Tensor big = torch::randn({4096, 14336}, bf16_cuda()) * 0.02;
  const float g = nvfp4_global_scale(big);
  for (int i = 0; i < 2; ++i) {
    cuda::nvfp4_quantize(big, g);
    cuda::nvfp4_quantize(big, std::nullopt);
    cuda::nvfp4_fake_quantize(big, g);
    cuda::mxfp4_quantize(big, MxScaleRule::compressed_tensors);
  }
  for (const auto& [N, K] : std::vector<std::pair<int64_t, int64_t>>{{4096, 4096}, {14336, 4096}}) {
    const Nvfp4Weight q = nvfp4_quantize(torch::randn({N, K}, bf16_cuda()) * 0.02);
    const Fp4Weight nv{q.packed, q.block_scale, q.global_scale};
    for (const int64_t M : {1, 16, 64, 4096}) {
      const torch::Tensor x = torch::randn({M, K}, bf16_cuda());
      for (int i = 0; i < 2; ++i) fp4_linear(x, nv, torch::Tensor());
    }
  }
  // The A2.7B experts at 32 tokens (decode kernel) and 2048 (the default prefill path).
  const int64_t E = 60, H = 2048, I = 1408, top_k = 4;
  cuda::MoeExperts experts;
  experts.gate_up = cuda::quantize_experts(torch::randn({E, 2 * I, H}, bf16_cuda()) * 0.02, true);
  experts.down = cuda::quantize_experts(torch::randn({E, H, I}, bf16_cuda()) * 0.02, true);
  for (const int64_t T : {32, 2048}) {
    const torch::Tensor x = torch::randn({T, H}, bf16_cuda());
    auto [wts, idx] = torch::softmax(torch::randn({T, E}, bf16_cuda()).to(torch::kFloat), -1).topk(top_k, -1);
    for (int i = 0; i < 2; ++i) cuda::moe_experts_forward(x, idx, wts, experts);
  }
  torch::cuda::synchronize();
  std::printf("fp4_bench profile: done\n");
  return 0;
}

int main(int argc, char** argv) {
  if (!torch::cuda::is_available()) {
    std::printf("fp4_bench: no CUDA device visible; nothing measured\n");
    return 1;
  }
  torch::NoGradGuard no_grad;
  if (argc == 2 && std::string(argv[1]) == "profile") return profile();
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  const double copy_gbs = copy_bandwidth_gbs();
  const double tflops = matmul_tflops();
  std::printf("# fp4_bench on %s (%d SMs)\n\nCeilings measured in this run: device-to-device copy %.0f GB/s "
              "(read + write bytes), bf16 torch::matmul 8192^3 %.0f TFLOP/s.\n",
              prop.name, prop.multiProcessorCount, copy_gbs, tflops);
  formats(copy_gbs);
  matmuls(copy_gbs, tflops);
  moe(copy_gbs);
  expert_projections(copy_gbs);
  return 0;
}
