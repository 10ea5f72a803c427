// The quantized Linear's one compute entry point: y = x · dequant(W)ᵀ + b
// for a weight held as NVFP4 or MXFP4 codes (W4A16: x stays in the model
// dtype). models/nn's Linear calls it whenever it holds codes; the codes
// and scales live on the model's device and no dense copy of W stays
// resident.
//
// Today this is the CPU reference: W is dequantized (kernels/nvfp4,
// kernels/mxfp4, on the CPU) into a temporary [out, in] in x's dtype on
// x's device and multiplied by LibTorch's matmul, so the result is
// bit-identical to multiplying by the dequantized weight. The CUDA kernel of
// issue 15 replaces the body for CUDA tensors (dequantizing in registers)
// behind this same signature.
#pragma once

#include <cstdint>

#include <torch/types.h>

namespace qerl::kernels {

// One Linear's codes, as compressed-tensors names them. NVFP4 has a global
// scale (a divisor, [1] float32) and E4M3 block scales over groups of 16;
// MXFP4 has E8M0 block scales (uint8) over groups of 32 and no global scale.
struct Fp4Weight {
  torch::Tensor packed;        // weight_packed: [out, in / 2] uint8, two E2M1 codes per byte
  torch::Tensor scale;         // weight_scale: [out, in / 16] float8_e4m3fn or [out, in / 32] uint8
  torch::Tensor global_scale;  // weight_global_scale: [1] float32 (NVFP4); undefined for MXFP4

  bool nvfp4() const { return global_scale.defined(); }
  int64_t out_features() const { return packed.size(0); }
  int64_t in_features() const { return packed.size(1) * 2; }
  // Bytes the codes and scales occupy.
  int64_t bytes() const;
  // The same tensors on `device`.
  Fp4Weight to(torch::Device device) const;
};

// Checks shapes and dtypes (qerl::Error naming what is wrong).
void check_fp4_weight(const Fp4Weight& w);

// dequant(W): [out, in] in `dtype` on the codes' device. bfloat16 and
// float32 come straight from the reference; other dtypes via float32.
torch::Tensor fp4_dequantize(const Fp4Weight& w, torch::ScalarType dtype);

// [sum of w^2, sum of (w - dequant(W))^2] as a float64 tensor [2] on w's
// device, dequant(W) in w's dtype (fp4_dequantize): the quantization error
// of codes W of w (float32 or bfloat16 [out, in]). On a CUDA device one
// kernel, no dense temporary and no host read.
torch::Tensor fp4_error_sums(const torch::Tensor& w, const Fp4Weight& codes);

// x: [..., in] floating; bias: [out] or undefined. -> [..., out] in x's
// dtype, differentiable in x (and bias); W gets no gradient (frozen codes).
torch::Tensor fp4_linear(const torch::Tensor& x, const Fp4Weight& w, const torch::Tensor& bias);

}  // namespace qerl::kernels
