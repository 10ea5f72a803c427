// What to quantize and how (the model side of [quantization]): the scheme,
// whether inputs are quantized too (W4A4), the ignore list (exact module
// names or "re:" patterns, compressed-tensors semantics) and whether fused
// siblings (q/k/v; gate/up of each MLP and expert) share one global scale.
// The pipeline loader builds this once (PipelineSpec::quantization.quant);
// the scheme's names and group sizes are written here only.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/named_enum.hpp"
#include "kernels/mxfp4.hpp"
#include "kernels/nvfp4.hpp"

namespace qerl::models {

enum class QuantScheme { none, nvfp4, mxfp4 };

constexpr auto enum_names(QuantScheme) {
  return std::array<EnumName<QuantScheme>, 3>{
      {{QuantScheme::none, "none"}, {QuantScheme::nvfp4, "nvfp4"}, {QuantScheme::mxfp4, "mxfp4"}}};
}

// Elements per block scale: 16 (NVFP4, E4M3 scales) or 32 (MXFP4, E8M0); 0 for none.
constexpr int64_t group_size(QuantScheme scheme) {
  return scheme == QuantScheme::nvfp4   ? kernels::nvfp4_group_size
         : scheme == QuantScheme::mxfp4 ? kernels::mxfp4_group_size
                                        : 0;
}

// Bytes a packed [out, in] weight of `numel` elements occupies: E2M1 codes
// at half a byte each, one block-scale byte per group (E4M3 per 16 for
// NVFP4, E8M0 per 32 for MXFP4) and NVFP4's float32 global scale. The
// memory plan and the quantization summary both count with this.
constexpr int64_t packed_bytes(QuantScheme scheme, int64_t numel) {
  return scheme == QuantScheme::mxfp4   ? numel / 2 + numel / 32
         : scheme == QuantScheme::nvfp4 ? numel / 2 + numel / 16 + 4
                                        : 0;
}

// Activations: W4A16 (weights only) or W4A4 (inputs quantized too).
enum class QuantMode { w4a16, w4a4 };

constexpr auto enum_names(QuantMode) {
  return std::array<EnumName<QuantMode>, 2>{{{QuantMode::w4a16, "w4a16"}, {QuantMode::w4a4, "w4a4"}}};
}

struct QuantSpec {
  QuantScheme scheme = QuantScheme::none;
  bool quantize_inputs = false;  // W4A4 (else W4A16)
  std::vector<std::string> ignore{"lm_head", "re:.*mlp\\.gate$", "re:.*shared_expert_gate$"};
  bool fuse_scales = true;
};

inline const char* quant_scheme_name(QuantScheme scheme) { return enum_name(scheme); }

}  // namespace qerl::models
