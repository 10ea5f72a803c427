// The modules a CausalLM(config) registers, with their parameter shapes,
// read from the ModelConfig alone (nothing allocated): what the memory plan
// (actors/memory_plan.hpp) counts bytes over. It mirrors the constructors of
// causal_lm.cpp, decoder_layer.cpp, attention.cpp, swiglu.cpp and
// sparse_moe.cpp; tests/models/nn/module_inventory_test.cpp compares it with
// a built model's named_modules / named_parameters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/nn/model_config.hpp"

namespace qerl::models {

enum class ModuleKind { linear, rms_norm, embedding };

struct ModuleShape {
  std::string name;  // as named_modules() names it, e.g. "model.layers.0.mlp.experts.3.up_proj"
  ModuleKind kind = ModuleKind::linear;
  int64_t in_features = 0;   // linear: input width; rms_norm / embedding: the dim
  int64_t out_features = 0;  // linear: output width; embedding: the vocabulary; rms_norm: 0
  bool bias = false;         // linear only: a [out] bias

  // Elements of the module's "weight" ([out, in], [dim] or [vocab, dim]).
  int64_t weight_numel() const;
  // Elements of all its own parameters (weight + bias).
  int64_t parameter_numel() const;
};

// Every parameter-holding module of CausalLM(config), in named_modules() order.
std::vector<ModuleShape> module_inventory(const ModelConfig& config);

}  // namespace qerl::models
