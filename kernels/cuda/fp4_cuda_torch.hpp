// LibTorch entry points of the CUDA kernels in fp4_cuda.hpp, for CUDA
// tensors on the current stream. Shapes and dtypes are checked here
// (qerl::Error, one line). Compiled wherever nvcc is found; linked into
// qerl_kernels in QERL_CUDA builds, where kernels/quantize_tensor.cpp and
// kernels/fp4_linear.cpp send CUDA tensors here.
#pragma once

#include <optional>
#include <vector>

#include <torch/types.h>

#include "kernels/fp4_linear.hpp"
#include "kernels/quantize_tensor.hpp"

namespace qerl::kernels::cuda {

// --- formats: same contracts as kernels/quantize_tensor.hpp, on the GPU ---
float nvfp4_global_scale(const torch::Tensor& w);  // one host read (the value)
std::vector<float> nvfp4_global_scales(const std::vector<torch::Tensor>& ws);  // one host read for all
torch::Tensor fp4_error_sums(const torch::Tensor& w, const Fp4Weight& codes);
Nvfp4Weight nvfp4_quantize(const torch::Tensor& w, std::optional<float> global_scale);
torch::Tensor nvfp4_fake_quantize(const torch::Tensor& w, std::optional<float> global_scale);
torch::Tensor nvfp4_dequantize(const torch::Tensor& packed, const torch::Tensor& block_scale,
                               const torch::Tensor& global_scale, torch::Dtype dtype);
Mxfp4Weight mxfp4_quantize(const torch::Tensor& w, MxScaleRule rule);
torch::Tensor mxfp4_fake_quantize(const torch::Tensor& w, MxScaleRule rule);
torch::Tensor mxfp4_dequantize(const torch::Tensor& packed, const torch::Tensor& scale, torch::Dtype dtype);

// --- the quantized Linear ---
// dequant(W) as [out, in] bf16 on W's device.
torch::Tensor fp4_dequantize_bf16(const Fp4Weight& w);

// y = x · dequant(W)ᵀ + b for bf16 x [..., in] on W's device. Up to
// `decode_rows_max` rows of x: the W4A16 decode kernels (W decoded in
// registers). More rows: the prefill path (below). Differentiable in x and
// bias (backward: dy · dequant(W) through cuBLAS).
inline constexpr int64_t decode_rows_max = 64;

// How the quantized Linear and the MoE experts multiply more than
// decode_rows_max rows (per expert): dequantize (the default) writes W
// (all experts of the projection) into a bf16 temporary and multiplies
// with cuBLAS / _grouped_mm; in_register is fp4_prefill_matmul_bf16, codes
// decoded in registers, no dense copy of W, measured 3.1-4.7x slower than
// the dequantize path at M >= 1024 on an H100 (bench/NOTES.md), so not the
// default. QERL_FP4_PREFILL=in_register in the environment selects it at
// start.
enum class PrefillPath { in_register, dequantize };
void set_prefill_path(PrefillPath path);
PrefillPath prefill_path();
torch::Tensor fp4_linear_bf16(const torch::Tensor& x, const Fp4Weight& w, const torch::Tensor& bias);

// --- MoE experts ---
// The experts of one projection stacked: packed [E, N, K / 2] uint8,
// scale [E, N, K / group] (E4M3 for NVFP4, uint8 E8M0 for MXFP4),
// global_scale [E] float32 (NVFP4; undefined for MXFP4).
struct Fp4Experts {
  torch::Tensor packed, scale, global_scale;
  bool nvfp4() const { return global_scale.defined(); }
};

// w: [E, N, K] bf16 on the GPU -> its codes, one global scale per expert
// (gate and up stacked in one tensor share it, as fused siblings do).
Fp4Experts quantize_experts(const torch::Tensor& w, bool nvfp4);

// Tokens sorted by expert, on the device, with no host read: for indices
// [T, top_k] (int64): order [T * top_k] (flat assignment ids t * top_k + s,
// stably sorted by expert), rows [T * top_k] (order / top_k, the token of
// each sorted row), offsets [E + 1] int32, position [T * top_k] (where each
// flat assignment sits in the sorted order). Decode-sized routings (up to
// sort_max_assignments) take one kernel (moe_sort_by_expert), larger ones
// LibTorch's sort, scatter and scan.
struct ExpertRouting {
  torch::Tensor order, rows, offsets, position;
};
ExpertRouting sort_by_expert(const torch::Tensor& indices, int64_t experts);

// y = x_sorted · dequant(W_e)ᵀ for each expert's rows, one launch.
torch::Tensor fp4_grouped_linear(const torch::Tensor& x_sorted, const ExpertRouting& routing, const Fp4Experts& w,
                                 int64_t rows_hint);

// bf16 experts' projection at decode sizes: y = x_sorted · W_eᵀ for each
// expert's rows, W [E, N, K] bf16, through bf16_grouped_decode_bf16 (no
// autograd). Which kernel moe_experts_forward gives bf16 experts while
// they get at most 16 rows on average and no gradient is needed:
// stream (this one, the default: measured faster from 8 tokens of the
// A2.7B MoE layer up, bench/NOTES.md) or grouped_mm (LibTorch's
// _grouped_mm; QERL_BF16_EXPERTS=grouped_mm in the environment selects it
// at start).
torch::Tensor bf16_grouped_linear(const torch::Tensor& x_sorted, const ExpertRouting& routing, const torch::Tensor& w,
                                  int64_t rows_hint);
enum class Bf16ExpertsKernel { grouped_mm, stream };
void set_bf16_experts_kernel(Bf16ExpertsKernel kernel);
Bf16ExpertsKernel bf16_experts_kernel();

// SwiGLU experts with top-k mixing, all on the device: x [T, H] bf16,
// indices [T, top_k] int64, weights [T, top_k] (fp32 or bf16: bf16
// weights round each weighted term to bf16, as the CPU path does);
// gate_up [E, 2I, H] (gate rows first) and down [E, H, I], as bf16 tensors
// (bf16_experts_kernel's choice at decode sizes, LibTorch's _grouped_mm
// past them or with a gradient) or fp4 codes (the grouped W4A16
// kernel while experts get at most decode_rows_max rows on average; past
// that, prefill-sized batches, the prefill path of set_prefill_path).
// -> [T, H] bf16.
struct MoeExperts {
  torch::Tensor gate_up_bf16, down_bf16;  // bf16 experts, or
  Fp4Experts gate_up, down;               // their codes
  // Optional LoRA of every expert (undefined: none), bf16, the scale folded
  // into b, the rank R padded with zeros to a multiple of 8: gate_up a
  // [E, 2R, H] and b [E, 2I, 2R] (gate's and up's adapters block-diagonal),
  // down a [E, R, I] and b [E, H, R].
  torch::Tensor gate_up_lora_a, gate_up_lora_b, down_lora_a, down_lora_b;
  bool fp4() const { return gate_up.packed.defined(); }
};
// [E, N, K] bf16 of every expert's codes, one launch.
torch::Tensor dequantize_experts_bf16(const Fp4Experts& w);

// Training through a frozen 4-bit base: rows [R, K] bf16 sorted by expert
// (routing from sort_by_expert) -> [R, N] = rows · dequant(W_e)ᵀ per
// expert, differentiable in rows. Forward as moe_experts_forward's
// projections; the backward (rows' gradient = grad · dequant(W_e)) decodes
// the codes again instead of keeping the dense experts between the passes
// (about 1 GiB per layer at Qwen1.5-MoE-A2.7B's shape).
torch::Tensor frozen_experts_projection(const torch::Tensor& rows, const ExpertRouting& routing,
                                        const Fp4Experts& codes);

torch::Tensor moe_experts_forward(const torch::Tensor& x, const torch::Tensor& indices, const torch::Tensor& weights,
                                  const MoeExperts& experts);

}  // namespace qerl::kernels::cuda
