// Scheme names of [quantization].scheme.
#include "models/quant/quant_spec.hpp"

#include "common/error.hpp"

namespace qerl::models {

QuantScheme parse_quant_scheme(const std::string& text) {
  if (text == "none") return QuantScheme::none;
  if (text == "nvfp4") return QuantScheme::nvfp4;
  if (text == "mxfp4") return QuantScheme::mxfp4;
  throw Error("quantization.scheme: expected \"none\", \"nvfp4\" or \"mxfp4\", got \"" + text + "\"");
}

const char* quant_scheme_name(QuantScheme scheme) {
  switch (scheme) {
    case QuantScheme::none: return "none";
    case QuantScheme::nvfp4: return "nvfp4";
    case QuantScheme::mxfp4: return "mxfp4";
  }
  return "none";
}

}  // namespace qerl::models
