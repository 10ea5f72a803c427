// Every kernel choice a test or benchmark may switch, saved when a
// KernelChoices is made and put back when it goes out of scope: the decode
// and prefill kernels (fp4_cuda.hpp), the prefill path and the bf16
// experts' kernel (fp4_cuda_torch.hpp), the decode-path fusions
// (decoder_ops_torch.hpp). A check that throws between a switch and its
// restore then leaves no choice behind for the cases after it.
#pragma once

#include "kernels/cuda/decoder_ops_torch.hpp"
#include "kernels/cuda/fp4_cuda.hpp"
#include "kernels/cuda/fp4_cuda_torch.hpp"

namespace qerl::kernels::cuda {

class KernelChoices {
 public:
  KernelChoices()
      : decode_(fp4_decode_kernel()),
        prefill_(fp4_prefill_kernel()),
        path_(prefill_path()),
        bf16_experts_(bf16_experts_kernel()),
        fused_decode_(fused_decode_enabled()) {}
  ~KernelChoices() {
    fp4_select_decode_kernel(decode_);
    fp4_select_prefill_kernel(prefill_);
    set_prefill_path(path_);
    set_bf16_experts_kernel(bf16_experts_);
    set_fused_decode(fused_decode_);
  }
  KernelChoices(const KernelChoices&) = delete;
  KernelChoices& operator=(const KernelChoices&) = delete;

 private:
  DecodeKernel decode_;
  PrefillKernel prefill_;
  PrefillPath path_;
  Bf16ExpertsKernel bf16_experts_;
  bool fused_decode_;
};

}  // namespace qerl::kernels::cuda
