// One AdamW step through ATen's fused multi-tensor kernel: the learner
// trains thousands of small tensors (A2.7B LoRA: 8,976), and LibTorch's
// AdamW::step launches about ten element-wise kernels per tensor, which on
// a GPU is host time (about 90,000 launches a step). The fused kernel does
// the same arithmetic over lists of tensors in a few launches. On the CPU
// it runs too (tests compare it there) but is slower than AdamW::step
// (bench/optimizer_bench: 6.5x on 2 cores), so callers use it on GPUs.
#pragma once

#include <torch/optim/adamw.h>

namespace qerl::rl {

// Does what optimizer.step() does (decoupled weight decay, bias-corrected
// moments; parameters without a gradient are skipped) through
// at::_fused_adamw_, one call per parameter group, device, dtype and step
// count. The moments and step counts live in the optimizer's own state,
// created as AdamW::step creates them, so that saving and loading the
// optimizer, and its own step(), carry on from here. amsgrad is not
// supported (qerl::Error).
void fused_adamw_step(torch::optim::AdamW& optimizer);

}  // namespace qerl::rl
