// LibTorch bindings of the CUDA fp4 kernels (see fp4_cuda_torch.hpp).
#include "kernels/cuda/fp4_cuda_torch.hpp"

#include <c10/cuda/CUDAGuard.h>
#include <torch/nn/functional/linear.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <string>

#include "common/error.hpp"
#include "kernels/cuda/fp4_cuda.hpp"

namespace qerl::kernels::cuda {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(std::string(what) + ": " + cudaGetErrorString(status));
}

void require_cuda(const Fp4Weight& w, const char* what) {
  check_fp4_weight(w);
  if (!w.packed.is_cuda() || !w.scale.is_cuda() || (w.nvfp4() && !w.global_scale.is_cuda()))
    throw Error(std::string(what) + ": the codes, scales and global scale must be CUDA tensors");
  if (!w.packed.is_contiguous() || !w.scale.is_contiguous())
    throw Error(std::string(what) + ": the codes and scales must be contiguous");
}

const uint8_t* scale_bytes(const Fp4Weight& w) {
  return w.nvfp4() ? reinterpret_cast<const uint8_t*>(w.scale.data_ptr()) : w.scale.data_ptr<uint8_t>();
}

}  // namespace

torch::Tensor fp4_dequantize_bf16(const Fp4Weight& w) {
  require_cuda(w, "fp4_dequantize_bf16");
  const c10::cuda::CUDAGuard guard(w.packed.device());
  const int64_t rows = w.out_features(), cols = w.in_features();
  torch::Tensor out = torch::empty({rows, cols}, w.packed.options().dtype(torch::kBFloat16));
  auto* dst = reinterpret_cast<__nv_bfloat16*>(out.data_ptr());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (w.nvfp4()) {
    const torch::Tensor global = w.global_scale.to(torch::kFloat).contiguous();
    check(nvfp4_dequantize_bf16(w.packed.data_ptr<uint8_t>(), scale_bytes(w), global.data_ptr<float>(), rows, cols,
                                dst, stream),
          "nvfp4_dequantize_bf16");
  } else {
    check(mxfp4_dequantize_bf16(w.packed.data_ptr<uint8_t>(), scale_bytes(w), rows, cols, dst, stream),
          "mxfp4_dequantize_bf16");
  }
  return out;
}

torch::Tensor fp4_linear_bf16(const torch::Tensor& x, const Fp4Weight& w, const torch::Tensor& bias) {
  require_cuda(w, "fp4_linear_bf16");
  if (x.scalar_type() != torch::kBFloat16 || x.device() != w.packed.device())
    throw Error("fp4_linear_bf16: x must be bf16 on the codes' device, got " +
                std::string(c10::toString(x.scalar_type())) + " on " + x.device().str());
  const int64_t K = w.in_features(), N = w.out_features();
  if (x.size(-1) != K)
    throw Error("fp4_linear_bf16: input has " + std::to_string(x.size(-1)) + " features, the weight takes " +
                std::to_string(K));
  const torch::Tensor rows = x.reshape({-1, K}).contiguous();
  const int64_t M = rows.size(0);
  // The GEMV reads each row's codes 16 bytes at a time: aligned rows only.
  const bool aligned = reinterpret_cast<uintptr_t>(w.packed.data_ptr()) % 16 == 0;
  if (M > 8 || K % 32 != 0 || !aligned) {
    return torch::nn::functional::linear(x, fp4_dequantize_bf16(w), bias);
  }
  const c10::cuda::CUDAGuard guard(x.device());
  torch::Tensor y = torch::empty({M, N}, x.options());
  const torch::Tensor b = bias.defined() ? bias.to(torch::kBFloat16).contiguous() : torch::Tensor();
  const torch::Tensor global = w.nvfp4() ? w.global_scale.to(torch::kFloat).contiguous() : torch::Tensor();
  check(fp4_gemv_bf16(reinterpret_cast<const __nv_bfloat16*>(rows.data_ptr()), M, K, w.packed.data_ptr<uint8_t>(),
                      scale_bytes(w), w.nvfp4() ? global.data_ptr<float>() : nullptr, N,
                      b.defined() ? reinterpret_cast<const __nv_bfloat16*>(b.data_ptr()) : nullptr,
                      reinterpret_cast<__nv_bfloat16*>(y.data_ptr()), c10::cuda::getCurrentCUDAStream()),
        "fp4_gemv_bf16");
  auto shape = x.sizes().vec();
  shape.back() = N;
  return y.reshape(shape);
}

}  // namespace qerl::kernels::cuda
