// Timing helpers and the ceilings of the GPU benchmarks (fp4_bench,
// engine_bench): CUDA-event clocks (eager and graph-replayed) and the
// device's measured copy bandwidth and bf16 matmul rate, measured in the
// run that reports against them.
#pragma once

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <vector>

namespace qerl::bench {

// Two clocks. Both warm up first and take the median of `reps` samples.
// eager_us: CUDA events around `calls` back-to-back calls of fn(i), no host
//   synchronisation between them: the time per call a LibTorch user sees,
//   host dispatch included when it is longer than the GPU's work.
// graph_us: the same calls captured once in a CUDA graph and replayed: the
//   GPU's time per call with launch gaps shrunk (how the rollout engine runs
//   decode steps). fn must not read device memory on the host.
// fn(i) takes the call's index so that a caller can rotate over input copies
// that together exceed the L2 cache (otherwise repeated calls time the cache).
inline double median_event_us(const std::function<void()>& region, int reps) {
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> samples;
  for (int r = 0; r < reps; ++r) {
    cudaEventRecord(start, stream);
    region();
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

inline double eager_us(const std::function<void(int)>& fn, int calls = 20, int reps = 5) {
  for (int i = 0; i < 3; ++i) fn(i);
  return median_event_us([&] { for (int i = 0; i < calls; ++i) fn(i); }, reps) / calls;
}

inline double graph_us(const std::function<void(int)>& fn, int calls = 20, int reps = 7) {
  const c10::cuda::CUDAStreamGuard side(c10::cuda::getStreamFromPool());
  for (int i = 0; i < 3; ++i) fn(i);
  torch::cuda::synchronize();
  at::cuda::CUDAGraph graph;
  graph.capture_begin();
  for (int i = 0; i < calls; ++i) fn(i);
  graph.capture_end();
  graph.replay();
  return median_event_us([&] { graph.replay(); }, reps) / calls;
}

inline torch::TensorOptions bf16_cuda() { return torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA); }

// The best of a few large device-to-device copies (cudaMemcpyAsync and
// LibTorch's copy kernel; 256 MiB and 1 GiB), bytes read + written.
inline double copy_bandwidth_gbs() {
  double best = 0;
  for (const int64_t bytes : {int64_t(256) << 20, int64_t(1) << 30}) {
    torch::Tensor a = torch::empty({bytes}, torch::TensorOptions().dtype(torch::kUInt8).device(torch::kCUDA));
    torch::Tensor b = torch::empty_like(a);
    a.fill_(1);
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const double memcpy_us = eager_us(
        [&](int) { cudaMemcpyAsync(b.data_ptr(), a.data_ptr(), bytes, cudaMemcpyDeviceToDevice, stream); }, 5, 7);
    const double copy_us = eager_us([&](int) { b.copy_(a); }, 5, 7);
    best = std::max(best, 2.0 * bytes / std::min(memcpy_us, copy_us) / 1e3);
  }
  return best;
}

inline double matmul_tflops() {
  const int64_t n = 8192;
  torch::Tensor a = torch::randn({n, n}, bf16_cuda()), b = torch::randn({n, n}, bf16_cuda());
  const double us = graph_us([&](int) { torch::matmul(a, b); }, 5);
  return 2.0 * n * n * n / us / 1e6;
}

}  // namespace qerl::bench
