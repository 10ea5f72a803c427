// LibTorch entry points of the NVFP4 / MXFP4 CPU reference: what the model
// code calls to pack a Linear's weight, unpack it, or fake-quantize it for the
// QAT forward (fake_quantize == dequantize(quantize(w)) exactly). Inputs may
// live on any device; the work runs on the CPU and results come back on the
// input's device. Bad shapes or dtypes throw qerl::Error with one line.
#pragma once

#include <optional>
#include <vector>

#include <torch/types.h>

#include "kernels/mxfp4.hpp"

namespace qerl::kernels {

// The tensors of an NVFP4 Linear, named as in the checkpoint.
struct Nvfp4Weight {
  torch::Tensor packed;        // weight_packed: [out, in / 2] uint8
  torch::Tensor block_scale;   // weight_scale: [out, in / 16] float8_e4m3fn
  torch::Tensor global_scale;  // weight_global_scale: [1] float32 (a divisor)
};

// The tensors of an MXFP4 Linear.
struct Mxfp4Weight {
  torch::Tensor packed;  // weight_packed: [out, in / 2] uint8
  torch::Tensor scale;   // weight_scale: [out, in / 32] uint8, E8M0 (bias 127)
};

// G = 448 * 6 / amax(|w|) for w: [out, in] float32 or bfloat16 (1.0 for an
// all-zero w). Fused siblings (q/k/v, gate/up) pass the minimum G of the
// group to nvfp4_quantize.
float nvfp4_global_scale(const torch::Tensor& w);
// nvfp4_global_scale of each weight, with one host read for all of them
// when they are on a CUDA device (a full weight update packs thousands).
std::vector<float> nvfp4_global_scales(const std::vector<torch::Tensor>& ws);

// w: [out, in] float32 or bfloat16, in % 16 == 0. global_scale: the G to use
// (finite, > 0), or nullopt for nvfp4_global_scale(w).
Nvfp4Weight nvfp4_quantize(const torch::Tensor& w, std::optional<float> global_scale = std::nullopt);

// -> [out, in] in `dtype` (float32 or bfloat16): e2m1 * (block_scale / G).
torch::Tensor nvfp4_dequantize(const torch::Tensor& packed, const torch::Tensor& block_scale,
                               const torch::Tensor& global_scale, torch::Dtype dtype);

// dequantize(quantize(w, global_scale)) in w's dtype and shape.
torch::Tensor nvfp4_fake_quantize(const torch::Tensor& w, std::optional<float> global_scale = std::nullopt);

// w: [out, in] float32 or bfloat16, in % 32 == 0.
Mxfp4Weight mxfp4_quantize(const torch::Tensor& w, MxScaleRule rule = MxScaleRule::compressed_tensors);

// -> [out, in] in `dtype` (float32 or bfloat16): e2m1 * 2^(scale - 127).
torch::Tensor mxfp4_dequantize(const torch::Tensor& packed, const torch::Tensor& scale, torch::Dtype dtype);

// dequantize(quantize(w, rule)) in w's dtype and shape.
torch::Tensor mxfp4_fake_quantize(const torch::Tensor& w, MxScaleRule rule = MxScaleRule::compressed_tensors);

// The QAT forward with the straight-through backward: the value is
// nvfp4_fake_quantize(w, global_scale) (mxfp4_fake_quantize(w)), the
// gradient reaches w unchanged. One fake-quant pass (one kernel on CUDA).
torch::Tensor nvfp4_fake_quantize_ste(const torch::Tensor& w, float global_scale);
torch::Tensor mxfp4_fake_quantize_ste(const torch::Tensor& w);

}  // namespace qerl::kernels
