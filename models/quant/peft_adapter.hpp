// LoRA adapters as PEFT folders, the format PEFT's save_pretrained writes
// and PeftModel.from_pretrained reads: adapter_config.json (PEFT's
// LoraConfig) + adapter_model.safetensors, whose keys are
// "base_model.model.<module>.lora_A.weight" [r, in] and ".lora_B.weight"
// [out, r] for qerl's "<module>.lora_A.weight" / "<module>.lora_B.weight".
// Plain LoRA only (W' = W + (lora_alpha / r) B A): reading rejects DoRA,
// rsLoRA, biases, per-module ranks and every other PEFT variant by name.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "models/quant/lora.hpp"

namespace qerl::models {

struct PeftAdapter {
  LoraConfig config;
  std::map<std::string, torch::Tensor> tensors;  // qerl names, CPU, in their stored dtype
  std::string base_model;                        // base_model_name_or_path ("" when null)
};

// Creates `dir` if needed and writes both files (atomically). `tensors` are
// qerl-named A/B pairs of rank config.rank (qerl::Error otherwise).
// target_modules: a list when every entry is a leaf name; one regex (what
// PEFT takes besides a list) when any entry is "re:<regex>" — qerl's
// leaf/start-anchored semantics rewritten for PEFT's re.fullmatch.
void write_peft_adapter(const std::filesystem::path& dir, const LoraConfig& config,
                        const std::map<std::string, torch::Tensor>& tensors, const std::string& base_model);

// Reads a folder written by write_peft_adapter or PEFT's save_pretrained.
// qerl::Error (file, key, what was expected) on missing files, bad JSON,
// peft_type other than LORA, any PEFT variant field set, a key not of the
// form base_model.model.<module>.lora_{A,B}.weight, an unpaired A or B, a
// rank other than r, a tensor holding NaN or infinities (named), or tensors
// on modules that target_modules does not select (PEFT matches a list's
// names as module-name suffixes, a string with re.fullmatch). A regex
// target_modules becomes one "re:" entry; the shorthand "all-linear"
// becomes the leaf names of the adapted modules.
PeftAdapter read_peft_adapter(const std::filesystem::path& dir);

// target_modules as adapter_config.json holds it (see write_peft_adapter).
nlohmann::json peft_target_modules(const std::vector<std::string>& target_modules);

}  // namespace qerl::models
