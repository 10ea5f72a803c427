// LibTorch device probe (see device_probe.hpp). torch::cuda::device_count()
// returns 0 when the CUDA hooks are not linked in (CPU build) or no driver
// is present, so this never throws on a laptop.
#include "tools/device_probe.hpp"

#include <torch/cuda.h>

namespace qerl::tools {

int count_cuda_devices() { return static_cast<int>(torch::cuda::device_count()); }

}  // namespace qerl::tools
