// LibTorch device probe (see device_probe.hpp). torch::cuda::device_count()
// returns 0 when the CUDA hooks are not linked in (CPU build) or no driver
// is present, so this never throws on a laptop.
#include "tools/device_probe.hpp"

#include <torch/cuda.h>

#include <fstream>
#include <sstream>
#include <string>

#if QERL_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace qerl::tools {

int count_cuda_devices() { return static_cast<int>(torch::cuda::device_count()); }

std::optional<int64_t> cuda_device_memory(int index) {
#if QERL_CUDA
  if (index < 0 || index >= count_cuda_devices()) return std::nullopt;
  return static_cast<int64_t>(at::cuda::getDeviceProperties(index)->totalGlobalMem);
#else
  (void)index;
  return std::nullopt;
#endif
}

std::optional<int64_t> cpu_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("MemTotal:", 0) != 0) continue;
    std::istringstream fields(line.substr(9));
    int64_t kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  return std::nullopt;
}

}  // namespace qerl::tools
