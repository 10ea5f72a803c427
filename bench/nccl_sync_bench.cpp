// nccl_sync_bench: the learner -> rollout weight sync over NCCL for the
// Qwen1.5-MoE-A2.7B shape on two GPUs of one host (issue 18): one NCCL
// broadcast from GPU 1 (the learner's) to GPU 0 (the rollout's) of
//  - the whole model in bf16 (28.6 GB),
//  - packed NVFP4, quantized on GPU 1 before sending (every Linear but the
//    router, shared-expert gate and lm_head, as pipelines/bench/
//    a27b_lora_nvfp4.toml; those, the embeddings and the norms stay bf16),
//  - LoRA only (rank 16 on every targeted Linear, fp32: 1.0 GB),
// against the link bandwidth measured in the same run (a broadcast of one
// large buffer). Random weights; the bytes are what matters. Prints a
// markdown table. Built in QERL_CUDA builds when NCCL is found; needs two
// visible GPUs (prints SKIPPED otherwise). NVLink multicast stays off
// (NCCL_NVLS_ENABLE=0, set before NCCL starts).
// usage: nccl_sync_bench [--reps N]
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <nccl.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cuda/fp4_cuda_torch.hpp"

namespace {

void nccl_check(ncclResult_t result, const char* what) {
  if (result != ncclSuccess) throw std::runtime_error(std::string(what) + ": " + ncclGetErrorString(result));
}

// One rank per GPU, both driven from this thread (grouped calls).
struct Link {
  ncclComm_t comm[2];
  cudaStream_t stream[2];
  static constexpr int root = 1;  // the learner's GPU

  Link() {
    int devices[2] = {0, 1};
    nccl_check(ncclCommInitAll(comm, 2, devices), "ncclCommInitAll");
    for (int d = 0; d < 2; ++d) {
      c10::cuda::CUDAGuard guard(d);
      cudaStreamCreateWithFlags(&stream[d], cudaStreamNonBlocking);
    }
  }
  ~Link() {
    for (int d = 0; d < 2; ++d) ncclCommDestroy(comm[d]);
  }

  void synchronize() {
    for (int d = 0; d < 2; ++d) {
      c10::cuda::CUDAGuard guard(d);
      cudaDeviceSynchronize();
    }
  }

  // Broadcasts every sources[i] (on GPU 1) into targets[i] (GPU 0, same
  // bytes), in one NCCL group; returns the milliseconds until both GPUs
  // are done.
  double broadcast(const std::vector<torch::Tensor>& sources, const std::vector<torch::Tensor>& targets) {
    synchronize();
    const auto start = std::chrono::steady_clock::now();
    nccl_check(ncclGroupStart(), "ncclGroupStart");
    for (size_t i = 0; i < sources.size(); ++i) {
      const size_t bytes = sources[i].nbytes();
      if (targets[i].nbytes() != bytes) throw std::runtime_error("broadcast: source and target sizes differ");
      nccl_check(ncclBroadcast(sources[i].data_ptr(), sources[i].data_ptr(), bytes, ncclUint8, root, comm[1], stream[1]),
                 "ncclBroadcast (root)");
      nccl_check(ncclBroadcast(nullptr, targets[i].data_ptr(), bytes, ncclUint8, root, comm[0], stream[0]),
                 "ncclBroadcast (receiver)");
    }
    nccl_check(ncclGroupEnd(), "ncclGroupEnd");
    for (int d = 0; d < 2; ++d) cudaStreamSynchronize(stream[d]);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double total_bytes(const std::vector<torch::Tensor>& ts) {
  double b = 0;
  for (const auto& t : ts) b += static_cast<double>(t.nbytes());
  return b;
}

std::vector<torch::Tensor> empty_on(const std::vector<torch::Tensor>& like, int device) {
  std::vector<torch::Tensor> out;
  for (const auto& t : like) out.push_back(torch::empty_like(t, t.options().device(torch::Device(torch::kCUDA, device))));
  return out;
}

// The A2.7B weights on GPU 1, bf16, random: quantized (the Linears the
// NVFP4 pipeline packs: q, k, v, o, the shared expert, the stacked
// experts) and kept (embeddings, lm_head, routers, shared-expert gates, norms).
struct Model {
  std::vector<torch::Tensor> quantized, kept;
};

Model a27b_on_gpu1() {
  const int64_t layers = 24, hidden = 2048, experts = 60, expert = 1408, shared = 5632, vocab = 151936;
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA, 1);
  const auto w = [&](std::vector<int64_t> shape) { return torch::randn(shape, bf16) * 0.02; };
  Model m;
  m.kept = {w({vocab, hidden}), w({vocab, hidden}), w({hidden})};  // embed_tokens, lm_head, final norm
  for (int64_t l = 0; l < layers; ++l) {
    for (int i = 0; i < 4; ++i) m.quantized.push_back(w({hidden, hidden}));  // q, k, v, o (16 heads x 128)
    m.quantized.push_back(w({shared, hidden}));                              // shared expert gate, up, down
    m.quantized.push_back(w({shared, hidden}));
    m.quantized.push_back(w({hidden, shared}));
    m.quantized.push_back(w({experts, 2 * expert, hidden}));  // experts' gate and up, stacked
    m.quantized.push_back(w({experts, hidden, expert}));      // experts' down
    for (const auto& shape : std::vector<std::vector<int64_t>>{{experts, hidden}, {1, hidden}, {hidden}, {hidden}})
      m.kept.push_back(w(shape));  // router, shared-expert gate, two norms
  }
  return m;
}

// NVFP4 codes of every quantized tensor (stacked experts: one global scale per expert).
std::vector<torch::Tensor> pack_nvfp4(const std::vector<torch::Tensor>& weights) {
  c10::cuda::CUDAGuard guard(1);
  std::vector<torch::Tensor> out;
  for (const auto& w : weights) {
    if (w.dim() == 3) {
      const auto codes = qerl::kernels::cuda::quantize_experts(w, /*nvfp4=*/true);
      out.insert(out.end(), {codes.packed, codes.scale.view(torch::kUInt8), codes.global_scale});
    } else {
      const auto codes = qerl::kernels::cuda::nvfp4_quantize(w, std::nullopt);
      out.insert(out.end(), {codes.packed, codes.block_scale.view(torch::kUInt8), codes.global_scale});
    }
  }
  return out;
}

// LoRA rank 16 (fp32 A [16, in] and B [out, 16]) on every Linear the pipeline targets.
std::vector<torch::Tensor> lora_on_gpu1() {
  const int64_t layers = 24, hidden = 2048, experts = 60, expert = 1408, shared = 5632, r = 16;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(torch::kCUDA, 1);
  std::vector<torch::Tensor> out;
  const auto adapter = [&](int64_t in, int64_t o) {
    out.push_back(torch::randn({r, in}, f32));
    out.push_back(torch::randn({o, r}, f32));
  };
  for (int64_t l = 0; l < layers; ++l) {
    for (int i = 0; i < 4; ++i) adapter(hidden, hidden);
    adapter(hidden, shared);
    adapter(hidden, shared);
    adapter(shared, hidden);
    for (int64_t e = 0; e < experts; ++e) {
      adapter(hidden, expert);
      adapter(hidden, expert);
      adapter(expert, hidden);
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  ::setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/1);  // NVLink multicast off on shared GPU hosts
  int reps = 5;
  for (int i = 1; i + 1 < argc; i += 2)
    if (!std::strcmp(argv[i], "--reps")) reps = std::max(1, std::atoi(argv[i + 1]));
  const int gpus = static_cast<int>(torch::cuda::device_count());
  if (gpus < 2) {
    std::printf("SKIPPED: %d CUDA device(s) visible; the NCCL weight sync needs two\n", gpus);
    return 0;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  Link link;
  int nccl_version = 0;
  ncclGetVersion(&nccl_version);

  // The link: one 4 GiB buffer, GPU 1 -> GPU 0.
  const auto bytes_on = [](int d, int64_t n) {
    return torch::empty({n}, torch::TensorOptions().dtype(torch::kUInt8).device(torch::kCUDA, d));
  };
  const std::vector<torch::Tensor> big_src{bytes_on(1, int64_t{4} << 30)}, big_dst{bytes_on(0, int64_t{4} << 30)};
  link.broadcast(big_src, big_dst);  // warm-up: connection setup
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) ms.push_back(link.broadcast(big_src, big_dst));
  const double link_gbs = total_bytes(big_src) / (median(ms) * 1e6);

  struct Row {
    std::string name;
    double bytes, prepare_ms, send_ms;
  };
  std::vector<Row> rows;
  {
    const Model model = a27b_on_gpu1();
    std::vector<torch::Tensor> all = model.quantized;
    all.insert(all.end(), model.kept.begin(), model.kept.end());
    const auto targets = empty_on(all, 0);
    ms.clear();
    for (int r = 0; r < reps; ++r) ms.push_back(link.broadcast(all, targets));
    rows.push_back({"bf16, whole model", total_bytes(all), 0, median(ms)});

    // Quantize before send: the packing is part of the sync's time.
    std::vector<double> pack_ms, send_ms;
    double bytes = 0;
    for (int r = 0; r < reps; ++r) {
      link.synchronize();
      const auto start = std::chrono::steady_clock::now();
      std::vector<torch::Tensor> packed = pack_nvfp4(model.quantized);
      link.synchronize();
      pack_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
      packed.insert(packed.end(), model.kept.begin(), model.kept.end());
      const auto packed_targets = empty_on(packed, 0);
      send_ms.push_back(link.broadcast(packed, packed_targets));
      bytes = total_bytes(packed);
    }
    rows.push_back({"NVFP4 packed (quantize, then send)", bytes, median(pack_ms), median(send_ms)});
  }
  {
    const std::vector<torch::Tensor> lora = lora_on_gpu1();
    const auto targets = empty_on(lora, 0);
    ms.clear();
    for (int r = 0; r < reps; ++r) ms.push_back(link.broadcast(lora, targets));
    rows.push_back({"LoRA only (rank 16, fp32)", total_bytes(lora), 0, median(ms)});
  }

  std::printf("device %s x2, NCCL %d, NCCL_NVLS_ENABLE=0; link (one 4 GiB broadcast GPU 1 -> GPU 0): %.1f GB/s "
              "(median of %d)\n\n",
              prop.name, nccl_version, link_gbs, reps);
  std::printf("| payload | bytes (GB) | prepare (ms) | send (ms) | total (ms) | send GB/s | %% of link |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows)
    std::printf("| %s | %.2f | %.1f | %.1f | %.1f | %.1f | %.0f %% |\n", r.name.c_str(), r.bytes / 1e9, r.prepare_ms,
                r.send_ms, r.prepare_ms + r.send_ms, r.bytes / (r.send_ms * 1e6),
                100.0 * r.bytes / (r.send_ms * 1e6) / link_gbs);
  std::printf("\nNVFP4 (quantize + send) vs bf16 send: %.2fx less time; bytes %.2fx fewer\n",
              rows[0].send_ms / (rows[1].prepare_ms + rows[1].send_ms), rows[0].bytes / rows[1].bytes);
  return 0;
}
