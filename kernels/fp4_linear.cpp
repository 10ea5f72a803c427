// The CPU reference of the quantized Linear (see fp4_linear.hpp).
#include "kernels/fp4_linear.hpp"

#include <string>

#include <torch/nn/functional/linear.h>

#include "common/error.hpp"
#include "kernels/mxfp4.hpp"
#include "kernels/nvfp4.hpp"
#include "kernels/quantize_tensor.hpp"
#if QERL_CUDA
#include "kernels/cuda/fp4_cuda_torch.hpp"
#endif

namespace qerl::kernels {
namespace {

std::string sizes_of(const torch::Tensor& t) { return c10::str(t.sizes()); }

}  // namespace

int64_t Fp4Weight::bytes() const {
  int64_t n = packed.numel() * packed.element_size() + scale.numel() * scale.element_size();
  if (global_scale.defined()) n += global_scale.numel() * global_scale.element_size();
  return n;
}

Fp4Weight Fp4Weight::to(torch::Device device) const {
  return Fp4Weight{packed.to(device), scale.to(device), global_scale.defined() ? global_scale.to(device) : torch::Tensor()};
}

void check_fp4_weight(const Fp4Weight& w) {
  if (!w.packed.defined() || !w.scale.defined()) throw Error("fp4 weight: packed codes or scales are undefined");
  if (w.packed.dim() != 2 || w.packed.scalar_type() != torch::kUInt8)
    throw Error("fp4 weight: weight_packed must be a 2-D uint8 tensor, got " + sizes_of(w.packed) + " " +
                std::string(c10::toString(w.packed.scalar_type())));
  const int64_t group = w.nvfp4() ? nvfp4_group_size : mxfp4_group_size;
  const auto scale_type = w.nvfp4() ? torch::kFloat8_e4m3fn : torch::kUInt8;
  const int64_t out = w.out_features(), in = w.in_features();
  if (in % group != 0 || w.scale.sizes() != torch::IntArrayRef{out, in / group} || w.scale.scalar_type() != scale_type)
    throw Error(std::string("fp4 weight: ") + (w.nvfp4() ? "NVFP4" : "MXFP4") + " codes " + sizes_of(w.packed) +
                " need weight_scale [" + std::to_string(out) + ", " + std::to_string(in / group) + "] " +
                c10::toString(scale_type) + ", got " + sizes_of(w.scale) + " " + c10::toString(w.scale.scalar_type()));
  if (w.nvfp4() && w.global_scale.numel() != 1)
    throw Error("fp4 weight: weight_global_scale must hold one value, got " + sizes_of(w.global_scale));
}

torch::Tensor fp4_dequantize(const Fp4Weight& w, torch::ScalarType dtype) {
  const torch::ScalarType kernel_dtype = dtype == torch::kBFloat16 ? torch::kBFloat16 : torch::kFloat;
  const torch::Tensor dense = w.nvfp4() ? nvfp4_dequantize(w.packed, w.scale, w.global_scale, kernel_dtype)
                                        : mxfp4_dequantize(w.packed, w.scale, kernel_dtype);
  return dense.to(w.packed.device(), dtype);
}

torch::Tensor fp4_error_sums(const torch::Tensor& w, const Fp4Weight& codes) {
  torch::NoGradGuard no_grad;
#if QERL_CUDA
  if (w.is_cuda()) return cuda::fp4_error_sums(w, codes);
#endif
  const torch::Tensor w64 = w.to(torch::kDouble);
  const torch::Tensor dequantized = fp4_dequantize(codes, w.scalar_type()).to(w.device(), torch::kDouble);
  return torch::stack({w64.square().sum(), (w64 - dequantized).square().sum()});
}

torch::Tensor fp4_linear(const torch::Tensor& x, const Fp4Weight& w, const torch::Tensor& bias) {
  if (x.size(-1) != w.in_features())
    throw Error("fp4_linear: input " + sizes_of(x) + " has " + std::to_string(x.size(-1)) +
                " features, the weight takes " + std::to_string(w.in_features()));
#if QERL_CUDA
  if (x.is_cuda() && x.scalar_type() == torch::kBFloat16 && w.packed.device() == x.device())
    return cuda::fp4_linear_bf16(x, w, bias);
#endif
  torch::Tensor dense;
  {
    torch::NoGradGuard no_grad;
    dense = fp4_dequantize(w, x.scalar_type()).to(x.device());
  }
  return torch::nn::functional::linear(x, dense, bias);
}

}  // namespace qerl::kernels
