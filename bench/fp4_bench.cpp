// fp4_bench: the CUDA fp4 kernels against the ceilings measured in the same
// run (device-to-device copy bandwidth, bf16 torch::matmul rate) and against
// LibTorch/cuBLAS bf16 baselines, on the shapes of issue 15. Prints
// markdown tables. Built in QERL_CUDA builds; run by bench/gpu_bench.sh.
#include <ATen/ops/_grouped_mm.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/fp4_cuda_torch.hpp"
#include "kernels/fp4_linear.hpp"
#include "kernels/quantize_tensor.hpp"

using namespace qerl::kernels;

namespace {

// Median over `reps` timed runs (CUDA events) of `fn`, after warm-up, in microseconds.
double time_us(const std::function<void()>& fn, int reps = 30) {
  for (int i = 0; i < 3; ++i) fn();
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  std::vector<double> samples;
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(start, stream);
    fn();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    samples.push_back(ms * 1000.0);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

torch::TensorOptions bf16_cuda() { return torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA); }

double copy_bandwidth_gbs() {
  const int64_t bytes = int64_t(1) << 30;
  torch::Tensor a = torch::empty({bytes}, torch::TensorOptions().dtype(torch::kUInt8).device(torch::kCUDA));
  torch::Tensor b = torch::empty_like(a);
  a.fill_(1);
  const double us = time_us([&] { b.copy_(a); }, 20);
  return 2.0 * bytes / us / 1e3;  // read + write
}

double matmul_tflops() {
  const int64_t n = 8192;
  torch::Tensor a = torch::randn({n, n}, bf16_cuda()), b = torch::randn({n, n}, bf16_cuda());
  const double us = time_us([&] { torch::matmul(a, b); }, 10);
  return 2.0 * n * n * n / us / 1e6;
}

void formats(double copy_gbs) {
  std::printf("\n## Pack and fake-quant (bf16 weights)\n\n");
  std::printf("| weight | op | time (us) | bytes moved (MB) | GB/s | %% of copy |\n|---|---|---|---|---|---|\n");
  struct Shape { const char* name; std::vector<int64_t> sizes; };
  for (const Shape& s : {Shape{"4096x14336", {4096, 14336}}, Shape{"60x(2816x2048) experts", {60, 2816, 2048}}}) {
    torch::manual_seed(1);
    const torch::Tensor w = (torch::randn(s.sizes, bf16_cuda()) * 0.02);
    const torch::Tensor w2 = w.dim() == 3 ? w.reshape({-1, w.size(-1)}) : w;
    const double n = static_cast<double>(w.numel());
    const bool experts = w.dim() == 3;
    const float g = nvfp4_global_scale(w2);
    struct Op { const char* name; double bytes; std::function<void()> fn; };
    std::vector<Op> ops = {
        {"amax (global-scale reduction)", 2 * n, [&] { (void)cuda::nvfp4_global_scale(w2); }},
        {"NVFP4 pack, G given", n * (2 + 0.5 + 1.0 / 16), [&] { cuda::nvfp4_quantize(w2, g); }},
        {"NVFP4 pack incl. amax pass", n * (2 + 0.5 + 1.0 / 16),
         [&] { if (experts) cuda::quantize_experts(w, true); else cuda::nvfp4_quantize(w2, std::nullopt); }},
        {"NVFP4 fake-quant, G given", n * 4, [&] { cuda::nvfp4_fake_quantize(w2, g); }},
        {"MXFP4 pack", n * (2 + 0.5 + 1.0 / 32), [&] { cuda::mxfp4_quantize(w2, MxScaleRule::compressed_tensors); }},
        {"MXFP4 fake-quant", n * 4, [&] { cuda::mxfp4_fake_quantize(w2, MxScaleRule::compressed_tensors); }},
    };
    for (const Op& op : ops) {
      const double us = time_us(op.fn, 20);
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

void matmuls(double copy_gbs, double tflops) {
  std::printf("\n## W4A16 matmul vs bf16 torch::matmul (cuBLAS)\n\n");
  std::printf("| N x K | M | bf16 (us) | NVFP4 (us) | speed-up | MXFP4 (us) | speed-up | NVFP4 %% of BW floor | "
              "NVFP4 %% of bf16 matmul rate |\n|---|---|---|---|---|---|---|---|---|\n");
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {2816, 2048}, {2048, 1408}};
  for (const auto& [N, K] : shapes) {
    torch::manual_seed(2);
    const torch::Tensor w = torch::randn({N, K}, bf16_cuda()) * 0.02;
    const Nvfp4Weight nq = nvfp4_quantize(w);
    const Mxfp4Weight mq = mxfp4_quantize(w);
    const Fp4Weight nv{nq.packed, nq.block_scale, nq.global_scale}, mx{mq.packed, mq.scale, torch::Tensor()};
    for (const int64_t M : {1, 4, 16, 64, 256, 4096}) {
      const torch::Tensor x = torch::randn({M, K}, bf16_cuda());
      const torch::Tensor none;
      const double t_bf16 = time_us([&] { torch::matmul(x, w.t()); });
      const double t_nv = time_us([&] { fp4_linear(x, nv, none); });
      const double t_mx = time_us([&] { fp4_linear(x, mx, none); });
      const double floor_us = (static_cast<double>(nv.bytes()) + 2.0 * M * (K + N)) / copy_gbs / 1e3;
      const double flops_us = 2.0 * M * N * K / tflops / 1e6;
      std::printf("| %lldx%lld | %lld | %.1f | %.1f | %.2fx | %.1f | %.2fx | %.0f %% | %.0f %% |\n", (long long)N,
                  (long long)K, (long long)M, t_bf16, t_nv, t_bf16 / t_nv, t_mx, t_bf16 / t_mx, 100 * floor_us / t_nv,
                  100 * flops_us / t_nv);
    }
  }
}

// Qwen1.5-MoE-A2.7B MoE layer: 60 experts top-4, hidden 2048, expert width
// 1408, shared expert 5632 (with its sigmoid gate).
void moe(double copy_gbs) {
  std::printf("\n## Qwen1.5-MoE-A2.7B MoE layer (60 experts top-4, H 2048, I 1408, shared 5632)\n\n");
  std::printf("| tokens | experts touched | per-expert loop bf16 (us) | grouped bf16 (us) | grouped W4A16 NVFP4 (us) | "
              "loop / grouped bf16 | bf16 / W4A16 | bf16 %% of floor | W4A16 %% of floor |\n"
              "|---|---|---|---|---|---|---|---|---|\n");
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
    const double t_loop = time_us([&] { loop(); }, 10);
    const double t_bf16 = time_us([&] { grouped_bf16(); }, 20);
    const double t_fp4 = time_us([&] { grouped_fp4(); }, 20);
    const int64_t touched = std::get<0>(at::_unique(route().second.reshape({-1}))).numel();
    const double expert_bf16 = 3.0 * I * H * 2, shared_bytes = 3.0 * S * H * 2;
    const double floor_bf16 = (touched * expert_bf16 + shared_bytes) / copy_gbs / 1e3;
    const double floor_fp4 = (touched * expert_bf16 + shared_bytes) * (0.5 + 1.0 / 16) / 2 / copy_gbs / 1e3;
    std::printf("| %lld | %lld | %.0f | %.0f | %.0f | %.2fx | %.2fx | %.0f %% | %.0f %% |\n", (long long)T,
                (long long)touched, t_loop, t_bf16, t_fp4, t_loop / t_bf16, t_bf16 / t_fp4, 100 * floor_bf16 / t_bf16,
                100 * floor_fp4 / t_fp4);
  }
}

}  // namespace

// `fp4_bench one N K M`: a few NVFP4 W4A16 calls of one shape and nothing
// else, for profiling one kernel under ncu.
int one_shape(int64_t N, int64_t K, int64_t M) {
  const torch::Tensor w = torch::randn({N, K}, bf16_cuda()) * 0.02;
  const Nvfp4Weight q = nvfp4_quantize(w);
  const Fp4Weight nv{q.packed, q.block_scale, q.global_scale};
  const torch::Tensor x = torch::randn({M, K}, bf16_cuda());
  const double us = time_us([&] { fp4_linear(x, nv, torch::Tensor()); }, 5);
  std::printf("NVFP4 W4A16 %lldx%lld M=%lld: %.1f us\n", (long long)N, (long long)K, (long long)M, us);
  return 0;
}

int main(int argc, char** argv) {
  if (!torch::cuda::is_available()) {
    std::printf("fp4_bench: no CUDA device visible; nothing measured\n");
    return 1;
  }
  torch::NoGradGuard no_grad;
  if (argc == 5 && std::string(argv[1]) == "one")
    return one_shape(std::stoll(argv[2]), std::stoll(argv[3]), std::stoll(argv[4]));
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
  return 0;
}
