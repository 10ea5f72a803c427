// How many CUDA devices this process can use, asked of LibTorch (0 on a
// CPU-only build or a machine without GPUs), and how much memory each has.
// Kept in its own translation unit so that only it includes a LibTorch header.
#pragma once

#include <cstdint>
#include <optional>

namespace qerl::tools {

int count_cuda_devices();

// Total memory of CUDA device `index` in bytes (cudaGetDeviceProperties'
// totalGlobalMem, through LibTorch); nullopt in a CPU-only build or when the
// device is not visible.
std::optional<int64_t> cuda_device_memory(int index);

// MemTotal of /proc/meminfo in bytes (the host's memory, the capacity the
// memory plan gives the "cpu" device); nullopt when unreadable.
std::optional<int64_t> cpu_memory_bytes();

}  // namespace qerl::tools
