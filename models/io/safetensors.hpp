// Reading and writing single .safetensors files with LibTorch tensors.
// Reading memory-maps the file: tensors are zero-copy views over the mapping
// (copy-on-write, so in-place edits never reach the file), each holding the
// mapping alive. Writing produces the same bytes as safetensors.torch.save_file
// (given at most one metadata key: Python orders several at random), atomically.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include <torch/types.h>

#include "models/io/safetensors_header.hpp"

namespace qerl::models {

// Same alias as checkpoint.hpp: tensors by name, in name order.
using TensorMap = std::map<std::string, torch::Tensor>;

struct SafetensorsFile {
  TensorMap tensors;             // CPU tensors in their stored dtype and shape
  SafetensorsMetadata metadata;  // "__metadata__", e.g. {"format": "pt"}
};

// Throws qerl::Error naming the file (and tensor) on a missing file or any
// header problem (see parse_safetensors_header).
SafetensorsFile read_safetensors(const std::filesystem::path& file);

// Writes `tensors` (any device, layout or stride; copied to contiguous CPU
// bytes) and `metadata`. Throws on dtypes safetensors cannot name
// (complex, quantized, ...). Replaces an existing file atomically.
void write_safetensors(const std::filesystem::path& file, const TensorMap& tensors,
                       const SafetensorsMetadata& metadata = {});

// The two dtype vocabularies; nullopt where torch has no counterpart.
torch::Dtype to_torch_dtype(Dtype dtype);
std::optional<Dtype> from_torch_dtype(torch::Dtype dtype);

}  // namespace qerl::models
