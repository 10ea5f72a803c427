// qerl-scan's model side (see layer_scan.hpp): picking the Linear weights,
// fake-quantizing one through the kernels' CPU reference while keeping its
// packed codes for the saturation count, and measuring the logits' error
// with only that weight replaced. Everything runs without autograd.
#include "tools/scan/layer_scan.hpp"

#include <algorithm>
#include <cctype>
#include <random>
#include <regex>
#include <sstream>

#include <torch/utils.h>

#include "common/error.hpp"
#include "common/name_pattern.hpp"
#include "kernels/mxfp4.hpp"
#include "kernels/nvfp4.hpp"
#include "kernels/quantize_tensor.hpp"
#include "models/nn/linear.hpp"
#include "models/nn/model_config.hpp"
#include "models/nn/non_finite.hpp"

namespace qerl::tools {

const char* scheme_name(QuantScheme scheme) { return scheme == QuantScheme::nvfp4 ? "nvfp4" : "mxfp4"; }

QuantScheme parse_scheme(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "nvfp4") return QuantScheme::nvfp4;
  if (lower == "mxfp4") return QuantScheme::mxfp4;
  throw Error("unknown scheme \"" + name + "\" (known: nvfp4, mxfp4)");
}

int64_t scheme_group_size(QuantScheme scheme) {
  return scheme == QuantScheme::nvfp4 ? kernels::nvfp4_group_size : kernels::mxfp4_group_size;
}

std::vector<std::string> default_scan_ignores() {
  return {"lm_head", R"(re:.*mlp\.gate$)", R"(re:.*shared_expert_gate$)"};
}

ScanSelection select_scan_targets(models::CausalLMImpl& lm, const std::vector<std::string>& extra_ignores) {
  NamePatterns defaults(default_scan_ignores(), "default ignore list");
  NamePatterns extra(extra_ignores, "--ignore");
  ScanSelection selection;
  for (const auto& item : lm.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    auto* linear = item.value()->as<models::LinearImpl>();  // every projection, router and lm_head
    if (linear == nullptr) continue;
    // Both lists see every Linear, so that each pattern's hits are counted.
    const bool by_default = defaults.matches(item.key());
    const bool by_extra = extra.matches(item.key());
    if (by_default || by_extra)
      selection.ignored.push_back(item.key());
    else
      selection.targets.push_back({item.key(), linear->weight});
  }
  selection.unmatched = extra.unmatched();
  return selection;
}

std::optional<std::string> unsupported_reason(const torch::Tensor& weight, QuantScheme scheme) {
  std::ostringstream why;
  if (weight.dim() != 2) {
    why << "weight is " << weight.dim() << "-D " << weight.sizes() << ", expected [out, in]";
  } else if (weight.scalar_type() != torch::kFloat32 && weight.scalar_type() != torch::kBFloat16) {
    why << "dtype " << c10::toString(weight.scalar_type())
        << " is not supported by the reference quantizer (float32 or bfloat16 only)";
  } else if (weight.size(1) % scheme_group_size(scheme) != 0) {
    why << "input dim " << weight.size(1) << " is not a multiple of the " << scheme_name(scheme)
        << " group size " << scheme_group_size(scheme);
  } else {
    return std::nullopt;
  }
  return why.str();
}

FakeQuantized fake_quantize_with_stats(const torch::Tensor& weight, QuantScheme scheme) {
  if (auto reason = unsupported_reason(weight, scheme))
    throw Error(std::string("fake_quantize_with_stats: ") + scheme_name(scheme) + ": " + *reason);
  torch::NoGradGuard no_grad;
  const torch::Tensor w = weight.detach();
  // dequantize(quantize(w)) is exactly kernels::*_fake_quantize; the two
  // steps are spelled out to keep the packed codes for the saturation count.
  torch::Tensor packed, fake;
  if (scheme == QuantScheme::nvfp4) {
    const kernels::Nvfp4Weight q = kernels::nvfp4_quantize(w);  // the tensor's own global scale
    packed = q.packed;
    fake = kernels::nvfp4_dequantize(q.packed, q.block_scale, q.global_scale, w.scalar_type());
  } else {
    const kernels::Mxfp4Weight q = kernels::mxfp4_quantize(w, kernels::MxScaleRule::compressed_tensors);
    packed = q.packed;
    fake = kernels::mxfp4_dequantize(q.packed, q.scale, w.scalar_type());
  }
  // Statistics on fp32 CPU copies (exact widening of bf16).
  const torch::Tensor w32 = w.to(torch::kCPU, torch::kFloat32).contiguous();
  const torch::Tensor q32 = fake.to(torch::kCPU, torch::kFloat32).contiguous();
  const torch::Tensor codes = packed.to(torch::kCPU).contiguous();  // [out, in / 2] uint8
  return {fake, quant_error_stats(w32.data_ptr<float>(), q32.data_ptr<float>(), codes.data_ptr<uint8_t>(),
                                  w32.numel())};
}

torch::Tensor calibration_prompts(int64_t vocab_size, int64_t count, int64_t length, uint64_t seed) {
  if (vocab_size <= 0 || count <= 0 || length <= 0) {
    throw Error("calibration_prompts: vocab_size " + std::to_string(vocab_size) + ", count " +
                std::to_string(count) + ", length " + std::to_string(length) + ": all must be > 0");
  }
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> token(0, vocab_size - 1);
  std::vector<int64_t> ids(static_cast<size_t>(count * length));
  for (auto& id : ids) id = token(rng);
  return torch::tensor(ids, torch::kLong).view({count, length});
}

CalibrationRun::CalibrationRun(models::CausalLMImpl& lm, torch::Tensor prompts)
    : lm_(lm), prompts_(prompts.to(lm.device(), torch::kLong)) {
  if (prompts_.dim() != 2) throw Error("CalibrationRun: prompts must be [N, S] token ids");
  torch::NoGradGuard no_grad;
  models::ForwardArgs args;
  args.input_ids = prompts_;
  args.routing = models::Routing::capture();
  models::ForwardOutput out = lm_.forward(args);
  clean_logits_ = out.logits.to(torch::kFloat32);
  // Errors relative to NaN logits would be NaN: no scan of such a model.
  if (const auto finding = models::non_finite_values("logits", clean_logits_))
    throw Error("calibration prompts, clean " + models::dtype_name(lm.dtype()) + " forward pass: " + *finding);
  clean_log_probs_ = clean_logits_.log_softmax(/*dim=*/-1);
  if (out.routing.indices.defined()) routing_ = out.routing.indices.to(torch::kCPU);
}

torch::Tensor CalibrationRun::logits() {
  models::ForwardArgs args;
  args.input_ids = prompts_;
  return lm_.forward(args).logits.to(torch::kFloat32);
}

namespace {

// Puts the saved values back into the parameter when the scope ends.
class RestoreOnExit {
 public:
  explicit RestoreOnExit(torch::Tensor& parameter) : parameter_(parameter), saved_(parameter.detach().clone()) {}
  RestoreOnExit(const RestoreOnExit&) = delete;
  RestoreOnExit& operator=(const RestoreOnExit&) = delete;
  ~RestoreOnExit() {
    torch::NoGradGuard no_grad;
    parameter_.copy_(saved_);
  }

 private:
  torch::Tensor& parameter_;
  torch::Tensor saved_;
};

}  // namespace

OutputError CalibrationRun::with_replaced(torch::Tensor& parameter, const torch::Tensor& replacement) {
  if (!replacement.sizes().equals(parameter.sizes()))
    throw Error("CalibrationRun: replacement shape differs from the parameter's");
  torch::NoGradGuard no_grad;
  torch::Tensor quant_logits;
  {
    RestoreOnExit restore(parameter);
    parameter.copy_(replacement);
    quant_logits = logits();  // [N, S, V] float32
  }
  OutputError error;
  error.relative_l2 = ((quant_logits - clean_logits_).norm() / clean_logits_.norm()).item<double>();
  const torch::Tensor kl = (clean_log_probs_.exp() * (clean_log_probs_ - quant_logits.log_softmax(-1))).sum(-1);
  error.mean_kl = kl.mean().item<double>();  // over the N * S positions
  return error;
}

std::optional<int64_t> CalibrationRun::routed_tokens(const std::string& module_name) const {
  if (!routing_.defined()) return std::nullopt;
  static const std::regex expert(R"(model\.layers\.(\d+)\.(\w+)\.experts\.(\d+)\.\w+)");
  std::smatch m;
  const auto& config = lm_.config();
  if (!std::regex_match(module_name, m, expert) || m[2].str() != config.mlp_module_name()) return std::nullopt;
  const int64_t layer = std::stoll(m[1].str()), index = std::stoll(m[3].str());
  if (layer >= config.num_hidden_layers || !config.is_moe_layer(layer)) return std::nullopt;
  int64_t moe_layer = 0;
  for (int64_t i = 0; i < layer; ++i) moe_layer += config.is_moe_layer(i) ? 1 : 0;
  // routing_: [N, S, L_moe, K]; the K experts of a token are distinct.
  return (routing_.select(/*dim=*/2, moe_layer) == index).sum().item<int64_t>();
}

}  // namespace qerl::tools
