// LoRA adapters over a CausalLM's Linear layers (QeRL trains these on a
// frozen quantized base): y = base(x) + (alpha / r) * B A dropout(x), with
// A [r, in] drawn uniformly (PEFT's Kaiming-uniform bound 1/sqrt(in)) and
// B [out, r] = 0, so a fresh adapter leaves the model unchanged. The
// adapters are fp32 leaves outside the model's parameters; their tensors
// travel as "<module>.lora_A.weight" / "<module>.lora_B.weight" (PEFT names).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

#include "common/name_pattern.hpp"
#include "models/nn/causal_lm.hpp"

namespace qerl::models {

struct LoraConfig {
  int64_t rank = 16;
  double alpha = 32;
  double dropout = 0;
  // Leaf module names ("q_proj": every module whose name ends in ".q_proj")
  // or "re:" patterns on the full module name.
  std::vector<std::string> target_modules{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
};

// Which modules LoraConfig::target_modules selects, PEFT's way for a list: a
// leaf name ("q_proj", "experts.3.down_proj") selects a module named it or
// ending in "." + it; a "re:" pattern matches as NamePatterns (anchored at
// the start). Throws qerl::Error (naming `context`) on an invalid regex.
class LoraTargets {
 public:
  LoraTargets(const std::vector<std::string>& target_modules, const std::string& context);
  bool selects(const std::string& module_name);

 private:
  std::vector<std::string> leaves_;
  NamePatterns patterns_;
};

class LoraAdapters {
 public:
  // Installs an adapter on every targeted Linear of `lm` (qerl::Error when
  // none matches or rank < 1). `seed` draws the A matrices.
  LoraAdapters(CausalLMImpl& lm, const LoraConfig& config, uint64_t seed);
  ~LoraAdapters();
  LoraAdapters(const LoraAdapters&) = delete;
  LoraAdapters& operator=(const LoraAdapters&) = delete;

  // The trainable tensors (A and B of every adapter), requires_grad = true.
  std::vector<torch::Tensor> parameters() const;
  // Their names ("<module>.lora_A.weight", "<module>.lora_B.weight"), in parameters()' order.
  std::vector<std::string> parameter_names() const;
  // Detached clones by name: what weight sync and checkpoints carry.
  std::map<std::string, torch::Tensor> tensors() const;
  // Copies tensors in by name; every adapter tensor must be present with its shape.
  void load(const std::map<std::string, torch::Tensor>& tensors);
  // Dropout only while training.
  void set_training(bool training) { training_ = training; }

  int64_t num_adapters() const { return static_cast<int64_t>(adapters_.size()); }
  int64_t num_parameters() const;
  double scale() const { return scale_; }

 private:
  struct Adapter {
    std::string name;  // module name
    LinearImpl* linear = nullptr;
    torch::Tensor a;  // [r, in] float32
    torch::Tensor b;  // [out, r] float32
  };
  std::vector<Adapter> adapters_;
  double scale_ = 1;
  double dropout_ = 0;
  bool training_ = true;
};

}  // namespace qerl::models
