// How many CUDA devices this process can use, asked of LibTorch (0 on a
// CPU-only build or a machine without GPUs). Kept in its own translation unit
// so that only it includes a LibTorch header.
#pragma once

namespace qerl::tools {

int count_cuda_devices();

}  // namespace qerl::tools
