// optimizer_bench: one optimizer step over the LoRA adapters of the A2.7B
// shape (rank 16 on q, k, v, o, the shared expert and 60 experts' gate, up
// and down of every layer: 8,976 fp32 tensors, 254 M values at 24 layers),
// LibTorch's AdamW::step and per-tensor gradient norms against
// rl::fused_adamw_step and the multi-tensor clip_grad_norm, with the
// bandwidth floor measured in the same run (AdamW reads parameter,
// gradient and both moments and writes three of them: 28 bytes a value;
// the norm reads 4). On a GPU when one is visible, else on the CPU.
// usage: optimizer_bench [--layers N] [--reps R]   (default 24 layers on a GPU, 2 on a CPU)
#include <torch/cuda.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "rl/fused_adamw.hpp"
#include "rl/grad_clip.hpp"

namespace {

// Adapter shapes ([r, in] and [out, r]) of one A2.7B decoder layer.
void add_layer(std::vector<std::vector<int64_t>>& shapes) {
  const int64_t r = 16, hidden = 2048, shared = 5632, expert = 1408;
  const auto adapter = [&](int64_t in, int64_t out) {
    shapes.push_back({r, in});
    shapes.push_back({out, r});
  };
  for (int i = 0; i < 4; ++i) adapter(hidden, hidden);  // q, k, v, o
  adapter(hidden, shared);                              // shared expert gate, up, down
  adapter(hidden, shared);
  adapter(shared, hidden);
  for (int e = 0; e < 60; ++e) {
    adapter(hidden, expert);
    adapter(hidden, expert);
    adapter(expert, hidden);
  }
}

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// Median milliseconds of `reps` calls of fn, synchronised around each.
double median_ms(const torch::Device& device, int reps, const std::function<void()>& fn) {
  fn();  // warm-up (state allocation, kernel loading)
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    sync(device);
    const auto start = std::chrono::steady_clock::now();
    fn();
    sync(device);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Per-tensor gradient norms and scaling: what clip_grad_norm did before
// its multi-tensor version.
double per_tensor_clip(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (const auto& p : params) norms.push_back(torch::linalg_vector_norm(p.grad(), 2, c10::nullopt, false, torch::kFloat));
  const double total = torch::stack(norms).norm().item<double>();
  if (total > max_norm)
    for (const auto& p : params) p.grad().mul_(max_norm / (total + 1e-6));
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  const bool cuda = torch::cuda::is_available();
  const torch::Device device = cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  int layers = cuda ? 24 : 2, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--layers")) layers = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::stoi(argv[i + 1]);
  }
  std::vector<std::vector<int64_t>> shapes;
  for (int l = 0; l < layers; ++l) add_layer(shapes);
  torch::manual_seed(1);
  const auto make = [&] {
    std::vector<torch::Tensor> params;
    for (const auto& s : shapes) {
      params.push_back(torch::randn(s, torch::TensorOptions().device(device)).mul_(0.01).requires_grad_());
      params.back().mutable_grad() = torch::randn(s, torch::TensorOptions().device(device));
    }
    return params;
  };
  const std::vector<torch::Tensor> a = make(), b = make();
  int64_t values = 0;
  for (const auto& p : a) values += p.numel();
  const auto options = torch::optim::AdamWOptions(3e-4).weight_decay(0.01);
  torch::optim::AdamW eager(a, options), fused(b, options);

  // The ceiling: a device-to-device copy of as many bytes as one AdamW step moves.
  const torch::Tensor src = torch::empty({values * 7}, torch::TensorOptions().device(device));
  torch::Tensor dst = torch::empty_like(src);
  const double copy_ms = median_ms(device, reps, [&] { dst.copy_(src); });
  const double copy_gbs = 2.0 * static_cast<double>(src.nbytes()) / (copy_ms * 1e6);  // read + write
  const double adam_floor_ms = 28.0 * static_cast<double>(values) / (copy_gbs * 1e6);
  const double norm_floor_ms = 4.0 * static_cast<double>(values) / (copy_gbs * 1e6);

  const double eager_ms = median_ms(device, reps, [&] { eager.step(); });
  const double fused_ms = median_ms(device, reps, [&] { qerl::rl::fused_adamw_step(fused); });
  const double clip_old_ms = median_ms(device, reps, [&] { per_tensor_clip(a, 1e9); });
  const double clip_new_ms = median_ms(device, reps, [&] { qerl::rl::clip_grad_norm(b, 1e9); });

  std::printf("device %s; %d layers: %zu tensors, %.1f M values; copy %.0f GB/s (measured)\n",
              cuda ? "cuda" : "cpu", layers, shapes.size(), static_cast<double>(values) / 1e6, copy_gbs);
  std::printf("| step | LibTorch per tensor ms | multi-tensor ms | speed-up | floor ms | multi-tensor x floor |\n");
  std::printf("|---|---|---|---|---|---|\n");
  std::printf("| AdamW | %.2f | %.2f | %.1fx | %.2f | %.1f |\n", eager_ms, fused_ms, eager_ms / fused_ms, adam_floor_ms,
              fused_ms / adam_floor_ms);
  std::printf("| gradient norm | %.2f | %.2f | %.1fx | %.2f | %.1f |\n", clip_old_ms, clip_new_ms,
              clip_old_ms / clip_new_ms, norm_floor_ms, clip_new_ms / norm_floor_ms);
  return 0;
}
