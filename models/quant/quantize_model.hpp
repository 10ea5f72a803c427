// Quantizing a CausalLM's Linear layers in place (REFERENCE.md NVFP4 /
// MXFP4 / QAT): PackedBase packs the weights and makes every quantized
// Linear compute with the dequantized codes (W4A16 rollout, frozen base);
// install_qat makes the learner's forward use fake-quantized weights with a
// straight-through gradient; inputs are quantized for W4A4 after a
// calibration pass sets each layer's input global scale.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "kernels/quantize_tensor.hpp"
#include "models/nn/causal_lm.hpp"
#include "models/quant/quant_spec.hpp"

namespace qerl::models {

// One Linear that gets quantized; siblings with the same fusion_group share
// one NVFP4 global scale (the minimum of theirs, i.e. the largest amax).
struct QuantTarget {
  std::string name;  // module name, e.g. "model.layers.0.self_attn.q_proj"
  LinearImpl* linear = nullptr;
  std::string fusion_group;  // e.g. "model.layers.0.self_attn.qkv"; the name itself when alone
};

// What was and was not quantized, for the log.
struct QuantSummary {
  int64_t quantized = 0;         // Linear modules
  int64_t ignored = 0;           // matched an ignore pattern
  int64_t unsupported = 0;       // input features not a multiple of the group size
  int64_t bytes_before = 0;      // quantized weights in the model dtype
  int64_t bytes_after = 0;       // codes + block scales (+ global scales)
  std::vector<std::string> unmatched_ignores;  // ignore patterns that matched no Linear
  std::vector<std::string> unsupported_names;
  std::string describe(QuantScheme scheme) const;  // one line
};

// The Linear modules of `lm` that `spec` quantizes, in module order.
std::vector<QuantTarget> plan_quantization(CausalLMImpl& lm, const QuantSpec& spec, QuantSummary* summary);

// group -> the NVFP4 global scale its members share (min over members, or
// each member's own when !spec.fuse_scales), from the current weights.
std::map<std::string, float> fused_global_scales(const std::vector<QuantTarget>& targets, const QuantSpec& spec);

// A frozen packed base: the codes are the source of truth; each quantized
// Linear's weight hook returns their dequantization (cached, as a CPU
// reference of a dequantize-in-matmul kernel). repack() re-quantizes from
// the Linear's current dense weights (call after new weights arrive).
class PackedBase {
 public:
  PackedBase(CausalLMImpl& lm, const QuantSpec& spec);
  ~PackedBase();
  PackedBase(const PackedBase&) = delete;
  PackedBase& operator=(const PackedBase&) = delete;

  void repack();
  const QuantSummary& summary() const { return summary_; }
  // Signal-to-quantization-noise ratio of the last repack over all packed
  // weights (element-weighted): 10 log10(sum w^2 / sum (w - dequant)^2).
  double sqnr_db() const { return sqnr_db_; }
  // Calibrates W4A4 input global scales on one forward of `input_ids`
  // ([B, S] int64, with attention_mask) and installs the input hooks.
  void calibrate_inputs(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);
  bool inputs_calibrated() const { return inputs_calibrated_; }
  // W4A4, after calibration: the input global scale of module `name` (0 if none).
  float input_global_scale(const std::string& name) const;

 private:
  struct Packed {
    kernels::Nvfp4Weight nvfp4;
    kernels::Mxfp4Weight mxfp4;
    torch::Tensor dequantized;  // [out, in] model dtype, what the matmul uses
  };
  CausalLMImpl* lm_;
  QuantSpec spec_;
  std::vector<QuantTarget> targets_;
  std::vector<std::shared_ptr<Packed>> packed_;
  QuantSummary summary_;
  bool inputs_calibrated_ = false;
  std::map<std::string, float> input_global_scales_;
  double sqnr_db_ = 0;
};

// QAT: each target's forward uses fake_quantize(W) (NVFP4 with the fused
// global scale recomputed from the current weights at every forward, or
// MXFP4), and the gradient w.r.t. W is the gradient w.r.t. that weight
// (straight-through). Returns the summary.
QuantSummary install_qat(CausalLMImpl& lm, const QuantSpec& spec);

// x: [..., in] -> x fake-quantized along its last dim (NVFP4 groups of 16
// with `input_global_scale`, or MXFP4 groups of 32), in x's dtype.
torch::Tensor fake_quantize_input(const torch::Tensor& x, QuantScheme scheme, float input_global_scale);

}  // namespace qerl::models
