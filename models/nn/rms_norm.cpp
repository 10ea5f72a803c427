// RMSNorm forward; see rms_norm.hpp for the precision contract.
#include "models/nn/rms_norm.hpp"

#include <torch/types.h>
#if QERL_CUDA
#include "kernels/cuda/decoder_ops_torch.hpp"
#endif

namespace qerl::models {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
#if QERL_CUDA
  // Without gradients on the GPU: one fused kernel instead of six launches.
  if (x.is_cuda() && x.scalar_type() == torch::kBFloat16 && weight.scalar_type() == torch::kBFloat16 &&
      !torch::GradMode::is_enabled())
    return kernels::cuda::rms_norm(x, weight, eps_);
#endif
  const auto input_dtype = x.scalar_type();
  auto x32 = x.to(torch::kFloat);
  auto variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  x32 = x32 * torch::rsqrt(variance + eps_);
  return weight * x32.to(input_dtype);
}

std::pair<torch::Tensor, torch::Tensor> RMSNormImpl::forward_added(const torch::Tensor& x,
                                                                   const torch::Tensor& residual) {
#if QERL_CUDA
  if (x.is_cuda() && x.scalar_type() == torch::kBFloat16 && residual.scalar_type() == torch::kBFloat16 &&
      weight.scalar_type() == torch::kBFloat16 && x.sizes() == residual.sizes() && !torch::GradMode::is_enabled() &&
      kernels::cuda::fused_decode_enabled())
    return kernels::cuda::add_rms_norm(x, residual, weight, eps_);
#endif
  torch::Tensor sum = x + residual;
  return {sum, forward(sum)};
}

}  // namespace qerl::models
