// What is measured around every step of a built-in stage, beyond its wall
// time (which the runtime takes):
//
// - On a CUDA device: the peak of LibTorch's caching allocator during the
//   step, as metrics perf/max_memory_allocated_gib/<stage> (tensors) and
//   perf/max_memory_reserved_gib/<stage> (what the allocator holds, as
//   nvidia-smi sees it). Stages sharing a device take turns, so each peak
//   is that stage's own (plus what the others keep resident).
// - On request, LibTorch's profiler (Kineto; CUPTI for GPU kernels):
//
//     QERL_TORCH_PROFILE="learner:5,reference:5" qerl-run pipeline.toml
//
//   profiles step 5 of the stages named learner and reference (the names
//   of [stages.<name>]): the stage's log gets the step's wall time, the GPU
//   kernel count and time, and the kernels and operators that took the
//   most; the Chrome trace goes to <run folder>/profile/<stage>-step<N>.json
//   (chrome://tracing or Perfetto). A malformed value stops the run at
//   setup with a line saying so.
#pragma once

#include <memory>

#include "runtime/stage.hpp"

namespace qerl::actors {

// A Stage that forwards to `stage` and measures its steps as above.
std::unique_ptr<runtime::Stage> instrumented(std::unique_ptr<runtime::Stage> stage);

}  // namespace qerl::actors
