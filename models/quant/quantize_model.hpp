// Quantizing a CausalLM's Linear layers in place (REFERENCE.md NVFP4 /
// MXFP4 / QAT): PackedBase packs the weights and makes every quantized
// Linear compute with its codes, y = x · dequant(W)ᵀ (W4A16 rollout, frozen
// base), optionally freeing the dense weights so only the codes stay resident;
// install_qat makes the learner's forward use fake-quantized weights with a
// straight-through gradient; inputs are quantized for W4A4 after a
// calibration pass sets each layer's input global scale.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "kernels/fp4_linear.hpp"
#include "kernels/quantize_tensor.hpp"
#include "models/io/checkpoint.hpp"
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

// The targets named `names` (module names of Linear layers of `lm`, in
// module order; qerl::Error for a name that is not one), fusion groups as
// plan_quantization assigns them.
std::vector<QuantTarget> named_targets(CausalLMImpl& lm, const std::vector<std::string>& names, const QuantSpec& spec);

// group -> the NVFP4 global scale its members share (min over members, or
// each member's own when !spec.fuse_scales), from the current weights.
std::map<std::string, float> fused_global_scales(const std::vector<QuantTarget>& targets, const QuantSpec& spec);

// The suffixes of a packed Linear's tensors, as compressed-tensors names
// them after the module name: weight_packed, weight_scale, (NVFP4)
// weight_global_scale, (W4A4) input_global_scale.
bool is_packed_tensor_name(const std::string& name);
// "<module>.weight_packed" -> "<module>"; "" for any other name.
std::string packed_module_name(const std::string& name);

// Every target's current weight packed, under compressed-tensors names
// (<module>.weight_packed, .weight_scale, NVFP4 .weight_global_scale with
// the fused global scales): what qerl-quantize stores and what a QAT
// learner sends the rollout.
TensorMap pack_weights(const std::vector<QuantTarget>& targets, const QuantSpec& spec);

// Whether a packed base keeps the Linears' dense weights beside the codes
// (needed while something writes them: AQN on Linear weights, a learner's
// optimizer) or frees them, so that only the codes (about 0.28x the bytes
// of bf16 for NVFP4) stay resident.
enum class Residency { keep_dense, codes_only };

// A packed base: the codes are the source of truth; each quantized Linear
// computes with them on the model's device (LinearImpl::set_codes,
// kernels::fp4_linear). Codes come from packing the Linears' dense weights
// (repack: those whose weight changed since they were last packed), from
// dense tensors (load_dense: a full weight update), or from stored tensors
// (load_packed: a compressed-tensors checkpoint, a QAT learner's update, a
// rollout checkpoint).
class PackedBase {
 public:
  // Packs the Linears `spec` selects from their current weights. With a
  // `device`, one fusion group at a time: its members' weights move there,
  // are packed (and with codes_only freed) before the next group moves, so
  // a model held on the host reaches the GPU quantized without its dense
  // copy ever being there whole (the caller moves the rest afterwards).
  PackedBase(CausalLMImpl& lm, const QuantSpec& spec, Residency residency = Residency::keep_dense,
             std::optional<torch::Device> device = std::nullopt);
  // Takes the codes of `packed` (compressed-tensors names): the Linears
  // holding a weight_packed there are the targets, whatever spec.ignore says.
  PackedBase(CausalLMImpl& lm, const QuantSpec& spec, const TensorMap& packed,
             Residency residency = Residency::keep_dense);
  ~PackedBase();
  PackedBase(const PackedBase&) = delete;
  PackedBase& operator=(const PackedBase&) = delete;

  // Re-quantizes every target whose dense weight changed (its version
  // counter moved) since it was packed or loaded; a no-op otherwise (and
  // always once the dense weights are freed).
  void repack();
  // Packs every target from `weights` (HF names, "<module>.weight"; each
  // target's must be there, other names are not read), as repack() would
  // pack them from the Linears; kept dense weights are set to them too.
  void load_dense(const TensorMap& weights);
  // Installs stored codes: every target's weight_packed and weight_scale
  // (and NVFP4 weight_global_scale) must be in `packed`, with the target's
  // shapes; tensors of other modules are an error. The dense weights are
  // overwritten with the dequantization (when kept), so they agree with the codes. With
  // an input_global_scale for every target (W4A4), the inputs count as
  // calibrated with those scales.
  void load_packed(const TensorMap& packed);
  // The current codes (and W4A4 input scales once calibrated), as load_packed takes them.
  TensorMap packed_tensors() const;
  // W4A4: only the input scales of `packed` (every target's
  // input_global_scale; other tensors there are not read). Nothing when it
  // holds none.
  void load_input_scales(const TensorMap& packed);

  const QuantSummary& summary() const { return summary_; }
  bool dense_released() const { return released_; }
  // Bytes of every target's codes and scales, on the model's device.
  int64_t code_bytes() const;
  const std::vector<QuantTarget>& targets() const { return targets_; }
  // Signal-to-quantization-noise ratio of the current codes over all
  // packed weights (element-weighted): 10 log10(sum w^2 / sum (w - dequant)^2),
  // w the dense weight that was packed; nullopt when some codes were loaded
  // (their dense original is unknown here).
  std::optional<double> sqnr_db() const;
  // Calibrates W4A4 input global scales on one forward of `input_ids`
  // ([B, S] int64, with attention_mask) and installs the input hooks.
  void calibrate_inputs(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);
  bool inputs_calibrated() const { return inputs_calibrated_; }
  // W4A4, after calibration: the input global scale of module `name` (0 if none).
  float input_global_scale(const std::string& name) const;

 private:
  struct Packed {
    std::shared_ptr<const kernels::Fp4Weight> codes;  // on the weight's device; the Linear holds them too
    int64_t version = -1;       // the dense weight's version counter when packed or loaded
    torch::Tensor error;        // [sum w^2, sum (w - dequant)^2] float64, on the weight's device
    bool loaded = false;        // codes from load_packed: error unknown
  };
  // Target i computes with these codes (moved to its device).
  void install(size_t i, torch::Tensor packed, torch::Tensor scale, torch::Tensor global);
  // Packs targets `members` from `weights` (one each, fused groups whole).
  void pack_from(const std::vector<size_t>& members, const std::vector<torch::Tensor>& weights);
  void release();  // frees the dense weights when codes_only
  void install_input_hooks();
  CausalLMImpl* lm_;
  QuantSpec spec_;
  bool release_dense_ = false;
  bool released_ = false;
  std::vector<QuantTarget> targets_;
  std::vector<std::shared_ptr<Packed>> packed_;
  QuantSummary summary_;
  bool inputs_calibrated_ = false;
  std::map<std::string, float> input_global_scales_;
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
