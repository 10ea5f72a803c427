// What to quantize and how (the model side of [quantization]): the scheme,
// whether inputs are quantized too (W4A4), the ignore list (exact module
// names or "re:" patterns, compressed-tensors semantics) and whether fused
// siblings (q/k/v; gate/up of each MLP and expert) share one global scale.
#pragma once

#include <string>
#include <vector>

namespace qerl::models {

enum class QuantScheme { none, nvfp4, mxfp4 };

struct QuantSpec {
  QuantScheme scheme = QuantScheme::none;
  bool quantize_inputs = false;  // W4A4 (else W4A16)
  std::vector<std::string> ignore{"lm_head", "re:.*mlp\\.gate$", "re:.*shared_expert_gate$"};
  bool fuse_scales = true;
};

// "none" | "nvfp4" | "mxfp4"; throws qerl::Error otherwise.
QuantScheme parse_quant_scheme(const std::string& text);
const char* quant_scheme_name(QuantScheme scheme);

}  // namespace qerl::models
