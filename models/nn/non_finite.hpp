// Finding NaN and infinities in weights and outputs, for the tools that
// must not report success on a broken model (qerl-merge, qerl-model,
// qerl-scan) and the readers that refuse such input (PEFT adapters). A
// finding is phrased for a one-line qerl::Error: the tensor and a count,
// "tensor <name>: 3 of 512 values are NaN or infinite".
#pragma once

#include <optional>
#include <string>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "models/io/checkpoint.hpp"

namespace qerl::models {

// The finding for one tensor (any shape, dtype, device), or nullopt when
// every value is finite; integer and bool tensors are always finite.
std::optional<std::string> non_finite_values(const std::string& name, const torch::Tensor& tensor);

// The first tensor of `tensors` (in name order) with a finding; names are
// reported as `name_prefix` + name (e.g. the stored key's prefix).
std::optional<std::string> find_non_finite(const TensorMap& tensors, const std::string& name_prefix = "");

// The first parameter of `module` (in registration order, by its full name)
// with a finding.
std::optional<std::string> find_non_finite_parameter(torch::nn::Module& module);

}  // namespace qerl::models
