// LibTorch bindings of the fused decoder kernels; see decoder_ops_torch.hpp.
#include "kernels/cuda/decoder_ops_torch.hpp"

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <string>

#include "common/error.hpp"
#include "kernels/cuda/decoder_ops.hpp"

namespace qerl::kernels::cuda {
namespace {

void check_bf16_cuda(const char* what, const torch::Tensor& t) {
  if (!t.defined() || !t.is_cuda() || t.scalar_type() != torch::kBFloat16)
    throw Error(std::string(what) + ": expected a bf16 CUDA tensor, got " +
                (t.defined() ? std::string(c10::toString(t.scalar_type())) + " " + c10::str(t.sizes()) + " on " +
                                   t.device().str()
                             : std::string("undefined")));
}

__nv_bfloat16* bf16(const torch::Tensor& t) { return reinterpret_cast<__nv_bfloat16*>(t.data_ptr()); }

// 16-byte aligned and contiguous (a copy when it is not).
torch::Tensor aligned(const torch::Tensor& t) {
  torch::Tensor c = t.contiguous();
  return reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 == 0 ? c : c.clone();
}

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(std::string(what) + ": " + cudaGetErrorString(status));
}

}  // namespace

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  check_bf16_cuda("rms_norm", x);
  check_bf16_cuda("rms_norm weight", weight);
  const int64_t dim = x.size(-1);
  if (weight.dim() != 1 || weight.size(0) != dim)
    throw Error("rms_norm: weight " + c10::str(weight.sizes()) + " for rows of " + std::to_string(dim));
  const c10::cuda::CUDAGuard guard(x.device());
  const torch::Tensor rows = aligned(x), w = aligned(weight);
  torch::Tensor out = torch::empty_like(rows);
  check(rms_norm_bf16(bf16(rows), bf16(w), static_cast<float>(eps), rows.numel() / dim, dim, bf16(out),
                      c10::cuda::getCurrentCUDAStream()),
        "rms_norm_bf16");
  return out;
}

torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  check_bf16_cuda("rotary", x);
  check_bf16_cuda("rotary cos", cos);
  check_bf16_cuda("rotary sin", sin);
  if (x.dim() != 4 || cos.dim() != 3 || cos.sizes() != sin.sizes() || cos.size(0) != x.size(0) ||
      cos.size(1) != x.size(1) || cos.size(2) != x.size(3))
    throw Error("rotary: x " + c10::str(x.sizes()) + " with tables " + c10::str(cos.sizes()));
  const c10::cuda::CUDAGuard guard(x.device());
  const torch::Tensor in = x.contiguous(), c = cos.contiguous(), s = sin.contiguous();
  const int64_t batch = x.size(0), seq = x.size(1), heads = x.size(2), dim = x.size(3);
  torch::Tensor out = torch::empty({batch, heads, seq, dim}, x.options());
  check(rotary_bf16(bf16(in), bf16(c), bf16(s), batch, seq, heads, dim, bf16(out), c10::cuda::getCurrentCUDAStream()),
        "rotary_bf16");
  return out;
}

}  // namespace qerl::kernels::cuda
