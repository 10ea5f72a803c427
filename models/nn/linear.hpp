// The Linear layer of every decoder module (projections, router, lm_head):
// HF layout (weight [out, in], optional bias [out]) plus two hooks that the
// quantization code (models/quant) installs: a weight view (W4A16 packed
// base dequantized, QAT fake-quantization with a straight-through gradient)
// and an input transform (W4A4: the input is quantized, not the output);
// plus an adapter added to the output (LoRA: y += B A dropout(x) * scale).
#pragma once

#include <functional>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace qerl::models {

class LinearImpl : public torch::nn::Module {
 public:
  // in -> out features; weights are left uninitialised (init_weights or a
  // checkpoint fills them).
  LinearImpl(int64_t in_features, int64_t out_features, bool bias);

  // x: [..., in] -> [..., out] in x's dtype:
  // input_hook(x) @ weight_hook(weight)^T + bias + adapter_hook(x).
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
  bool has_weight_hook() const { return static_cast<bool>(weight_hook_); }
  bool has_input_hook() const { return static_cast<bool>(input_hook_); }

  // The weight forward would use now ([out, in]).
  torch::Tensor effective_weight() const { return weight_hook_ ? weight_hook_(weight) : weight; }

  int64_t in_features() const { return weight.size(1); }
  int64_t out_features() const { return weight.size(0); }

  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out] or undefined

 private:
  WeightHook weight_hook_;
  InputHook input_hook_;
  AdapterHook adapter_hook_;
};
TORCH_MODULE(Linear);

}  // namespace qerl::models
