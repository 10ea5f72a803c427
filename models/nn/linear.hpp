// The Linear layer of every decoder module (projections, router, lm_head):
// HF layout (weight [out, in], optional bias [out]). It computes with one
// of two weights: the dense parameter, or 4-bit codes (a packed base,
// models/quant: y = x · dequant(W)ᵀ through kernels::fp4_linear, with the
// codes on the model's device and, once released, no dense copy resident).
// The quantization code also installs hooks: a weight view (QAT
// fake-quantization with a straight-through gradient), an input transform
// (W4A4: the input is quantized, not the output), and an adapter added to
// the output (LoRA: y += B A dropout(x) * scale).
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "kernels/fp4_linear.hpp"

namespace qerl::models {

class LinearImpl : public torch::nn::Module {
 public:
  // in -> out features; weights are left uninitialised (init_weights or a
  // checkpoint fills them).
  LinearImpl(int64_t in_features, int64_t out_features, bool bias);

  // x: [..., in] -> [..., out] in x's dtype:
  // input_hook(x) @ W^T + bias + adapter_hook(x), W = dequant(codes) when
  // the layer holds codes, else weight_hook(weight).
  torch::Tensor forward(const torch::Tensor& x);

  // The weight the matmul uses, given the parameter; none = the parameter.
  using WeightHook = std::function<torch::Tensor(const torch::Tensor& weight)>;
  // The input the matmul sees; none = x itself.
  using InputHook = std::function<torch::Tensor(const torch::Tensor& x)>;
  // A term added to the output, computed from the original input x.
  using AdapterHook = std::function<torch::Tensor(const torch::Tensor& x)>;
  void set_weight_hook(WeightHook hook) { weight_hook_ = std::move(hook); }
  void set_adapter_hook(AdapterHook hook) { adapter_hook_ = std::move(hook); }
  bool has_adapter_hook() const { return static_cast<bool>(adapter_hook_); }
  void set_input_hook(InputHook hook) { input_hook_ = std::move(hook); }

  // The adapter hook's terms as data when it is a low-rank (LoRA) adapter:
  // y += (dropout(x) A^T) B^T scale. Grouped MoE launches read it to apply
  // every expert's adapter at once (only while no dropout is active).
  struct LowRankAdapter {
    torch::Tensor a;  // [r, in] float32
    torch::Tensor b;  // [out, r] float32
    double scale = 1;
    std::function<bool()> dropout_active;
  };
  void set_low_rank_adapter(std::optional<LowRankAdapter> adapter) { low_rank_ = std::move(adapter); }
  const LowRankAdapter* low_rank_adapter() const { return low_rank_ ? &*low_rank_ : nullptr; }
  bool has_weight_hook() const { return static_cast<bool>(weight_hook_); }
  bool has_input_hook() const { return static_cast<bool>(input_hook_); }

  // The weight forward would use now ([out, in], materialised for codes).
  torch::Tensor effective_weight() const;

  // Computes with `codes` (shapes checked against this layer; on any
  // device: forward brings the result to the input's) until clear_codes.
  // The weight hook is not consulted while codes are set.
  // The codes object is shared with whoever installed it (a PackedBase
  // repacks into its tensors in place).
  void set_codes(std::shared_ptr<kernels::Fp4Weight> codes);
  void clear_codes() { codes_.reset(); }
  const kernels::Fp4Weight* codes() const { return codes_.get(); }
  // For moving the codes into storage shared with other layers (SparseMoe
  // makes them views of its stacked experts); the values must not change.
  kernels::Fp4Weight* mutable_codes() { return codes_.get(); }
  // With codes set: frees the dense parameter's storage (it becomes a
  // 0-element tensor of the same dtype, skipped by load_weights and
  // export_weights); the codes are then the only weight. Irreversible.
  void release_dense_weight();
  bool dense_released() const { return dense_released_; }

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out] or undefined

 private:
  int64_t in_features_ = 0, out_features_ = 0;
  std::shared_ptr<kernels::Fp4Weight> codes_;
  bool dense_released_ = false;
  WeightHook weight_hook_;
  InputHook input_hook_;
  AdapterHook adapter_hook_;
  std::optional<LowRankAdapter> low_rank_;
};
TORCH_MODULE(Linear);

}  // namespace qerl::models
