// SwiGLU forward.
#include "models/nn/swiglu.hpp"

#include <torch/types.h>
#if QERL_CUDA
#include "kernels/cuda/decoder_ops_torch.hpp"
#endif

namespace qerl::models {

SwiGLUImpl::SwiGLUImpl(int64_t hidden_size, int64_t intermediate_size, bool bias, const SwiGLUNames& names) {
  gate = register_module(names.gate, Linear(hidden_size, intermediate_size, bias));
  up = register_module(names.up, Linear(hidden_size, intermediate_size, bias));
  down = register_module(names.down, Linear(intermediate_size, hidden_size, bias));
}

torch::Tensor SwiGLUImpl::forward(const torch::Tensor& x) {
#if QERL_CUDA
  // Without gradients on the GPU, silu and the product are one kernel.
  if (x.is_cuda() && x.scalar_type() == torch::kBFloat16 && !torch::GradMode::is_enabled() &&
      kernels::cuda::fused_decode_enabled())
    return down->forward(kernels::cuda::silu_mul(gate->forward(x), up->forward(x)));
#endif
  return down->forward(torch::silu(gate->forward(x)) * up->forward(x));
}

}  // namespace qerl::models
