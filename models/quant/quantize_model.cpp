// Planning and applying weight quantization over a CausalLM (see
// quantize_model.hpp). Fusion groups follow the module names inference
// engines fuse: q_proj/k_proj/v_proj of one attention, gate_proj/up_proj
// (Mixtral: w1/w3) of one MLP or expert.
#include "models/quant/quantize_model.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "common/error.hpp"
#include "common/name_pattern.hpp"

namespace qerl::models {
namespace {

int64_t group_size(QuantScheme scheme) { return scheme == QuantScheme::mxfp4 ? 32 : 16; }

// "a.b.q_proj" -> "a.b.qkv"; "a.gate_proj" -> "a.gate_up"; otherwise the name.
std::string fusion_group_of(const std::string& name) {
  const auto dot = name.rfind('.');
  const std::string parent = dot == std::string::npos ? "" : name.substr(0, dot + 1);
  const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
  if (leaf == "q_proj" || leaf == "k_proj" || leaf == "v_proj") return parent + "qkv";
  if (leaf == "gate_proj" || leaf == "up_proj") return parent + "gate_up";
  if (leaf == "w1" || leaf == "w3") return parent + "w13";
  return name;
}

int64_t packed_bytes(QuantScheme scheme, int64_t numel) {
  return scheme == QuantScheme::mxfp4 ? numel / 2 + numel / 32 : numel / 2 + numel / 16 + 4;
}

}  // namespace

std::string QuantSummary::describe(QuantScheme scheme) const {
  std::ostringstream out;
  out << "quantized " << quantized << " Linear layers to " << quant_scheme_name(scheme) << " ("
      << bytes_before / 1024 << " KiB -> " << bytes_after / 1024 << " KiB), kept " << ignored
      << " ignored";
  if (unsupported > 0) out << " and " << unsupported << " whose input width is not a multiple of the group";
  return out.str();
}

std::vector<QuantTarget> plan_quantization(CausalLMImpl& lm, const QuantSpec& spec, QuantSummary* summary) {
  QuantSummary local;
  QuantSummary& s = summary ? *summary : local;
  s = QuantSummary{};
  std::vector<QuantTarget> targets;
  if (spec.scheme == QuantScheme::none) return targets;
  NamePatterns ignore(spec.ignore, "quantization.ignore");
  for (const auto& item : lm.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    auto* linear = item.value()->as<LinearImpl>();
    if (linear == nullptr) continue;
    const std::string& name = item.key();
    if (ignore.matches(name)) {
      ++s.ignored;
      continue;
    }
    if (linear->in_features() % group_size(spec.scheme) != 0) {
      ++s.unsupported;
      s.unsupported_names.push_back(name);
      continue;
    }
    targets.push_back({name, linear, spec.fuse_scales ? fusion_group_of(name) : name});
    ++s.quantized;
    const int64_t numel = linear->weight.numel();
    s.bytes_before += numel * static_cast<int64_t>(linear->weight.element_size());
    s.bytes_after += packed_bytes(spec.scheme, numel);
  }
  s.unmatched_ignores = ignore.unmatched();
  return targets;
}

std::map<std::string, float> fused_global_scales(const std::vector<QuantTarget>& targets, const QuantSpec& spec) {
  std::map<std::string, float> scales;
  if (spec.scheme != QuantScheme::nvfp4) return scales;
  torch::NoGradGuard no_grad;
  for (const auto& t : targets) {
    const float g = kernels::nvfp4_global_scale(t.linear->weight.detach());
    auto [it, fresh] = scales.emplace(t.fusion_group, g);
    if (!fresh) it->second = std::min(it->second, g);
  }
  return scales;
}

torch::Tensor fake_quantize_input(const torch::Tensor& x, QuantScheme scheme, float input_global_scale) {
  const auto shape = x.sizes().vec();
  const torch::Tensor rows = x.reshape({-1, shape.back()});
  torch::Tensor q = scheme == QuantScheme::mxfp4 ? kernels::mxfp4_fake_quantize(rows)
                                                 : kernels::nvfp4_fake_quantize(rows, input_global_scale);
  return q.reshape(shape);
}

PackedBase::PackedBase(CausalLMImpl& lm, const QuantSpec& spec) : lm_(&lm), spec_(spec) {
  if (spec.scheme == QuantScheme::none) throw Error("PackedBase: quantization.scheme is \"none\"");
  targets_ = plan_quantization(lm, spec, &summary_);
  for (auto& t : targets_) {
    auto packed = std::make_shared<Packed>();
    packed_.push_back(packed);
    // The hook ignores the dense parameter: the matmul sees the codes only.
    t.linear->set_weight_hook([packed](const torch::Tensor&) { return packed->dequantized; });
  }
  repack();
}

PackedBase::~PackedBase() {
  for (auto& t : targets_) {
    t.linear->set_weight_hook({});
    t.linear->set_input_hook({});
  }
}

void PackedBase::repack() {
  torch::NoGradGuard no_grad;
  const auto scales = fused_global_scales(targets_, spec_);
  double signal = 0, noise = 0;
  for (size_t i = 0; i < targets_.size(); ++i) {
    const torch::Tensor w = targets_[i].linear->weight.detach();
    Packed& p = *packed_[i];
    if (spec_.scheme == QuantScheme::nvfp4) {
      p.nvfp4 = kernels::nvfp4_quantize(w, scales.at(targets_[i].fusion_group));
      p.dequantized = kernels::nvfp4_dequantize(p.nvfp4.packed, p.nvfp4.block_scale, p.nvfp4.global_scale,
                                                w.scalar_type());
    } else {
      p.mxfp4 = kernels::mxfp4_quantize(w);
      p.dequantized = kernels::mxfp4_dequantize(p.mxfp4.packed, p.mxfp4.scale, w.scalar_type());
    }
    p.dequantized = p.dequantized.to(w.device());
    const torch::Tensor w64 = w.to(torch::kDouble);
    signal += w64.square().sum().item<double>();
    noise += (w64 - p.dequantized.to(torch::kDouble)).square().sum().item<double>();
  }
  sqnr_db_ = noise > 0 ? 10 * std::log10(signal / noise) : std::numeric_limits<double>::infinity();
}

void PackedBase::calibrate_inputs(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  if (!spec_.quantize_inputs) return;
  torch::NoGradGuard no_grad;
  // Pass 1: record each layer's input amax (padding rows included: they are
  // real activations of the pass, and their scale only widens the range).
  auto amax = std::make_shared<std::vector<float>>(targets_.size(), 0.f);
  for (size_t i = 0; i < targets_.size(); ++i)
    targets_[i].linear->set_input_hook([amax, i](const torch::Tensor& x) {
      (*amax)[i] = std::max((*amax)[i], x.detach().abs().max().to(torch::kFloat).item<float>());
      return x;
    });
  ForwardArgs args;
  args.input_ids = input_ids;
  args.attention_mask = attention_mask;
  args.logits_to_keep = 1;
  lm_->forward(args);
  // Pass 2 onwards: quantize inputs with G_in = 448 * 6 / amax (1 for an all-zero input).
  for (size_t i = 0; i < targets_.size(); ++i) {
    const float a = (*amax)[i];
    const float g = a > 0 ? 448.f * 6.f / a : 1.f;
    const QuantScheme scheme = spec_.scheme;
    input_global_scales_[targets_[i].name] = g;
    targets_[i].linear->set_input_hook([scheme, g](const torch::Tensor& x) { return fake_quantize_input(x, scheme, g); });
  }
  inputs_calibrated_ = true;
}

float PackedBase::input_global_scale(const std::string& name) const {
  const auto it = input_global_scales_.find(name);
  return it == input_global_scales_.end() ? 0.f : it->second;
}

QuantSummary install_qat(CausalLMImpl& lm, const QuantSpec& spec) {
  QuantSummary summary;
  auto targets = std::make_shared<std::vector<QuantTarget>>(plan_quantization(lm, spec, &summary));
  // The group's global scale from the current weights, recomputed lazily:
  // once per forward pass of the first member seen, keyed by the weights' version.
  auto scales = std::make_shared<std::map<std::string, float>>();
  auto versions = std::make_shared<std::map<std::string, int64_t>>();
  for (const auto& t : *targets) {
    const std::string group = t.fusion_group;
    const QuantScheme scheme = spec.scheme;
    t.linear->set_weight_hook([targets, scales, versions, group, scheme](const torch::Tensor& w) {
      torch::Tensor q;
      {
        torch::NoGradGuard no_grad;
        if (scheme == QuantScheme::nvfp4) {
          // Sum of the members' version counters: changes after any optimizer step.
          int64_t version = 0;
          for (const auto& m : *targets)
            if (m.fusion_group == group) version += m.linear->weight._version();
          auto it = versions->find(group);
          if (it == versions->end() || it->second != version) {
            float g = std::numeric_limits<float>::max();
            for (const auto& m : *targets)
              if (m.fusion_group == group) g = std::min(g, kernels::nvfp4_global_scale(m.linear->weight.detach()));
            (*scales)[group] = g;
            (*versions)[group] = version;
          }
          q = kernels::nvfp4_fake_quantize(w.detach(), scales->at(group));
        } else {
          q = kernels::mxfp4_fake_quantize(w.detach());
        }
      }
      // Straight-through: the value is q, the gradient flows to w unchanged.
      return w + (q.to(w.device()) - w).detach();
    });
  }
  return summary;
}

}  // namespace qerl::models
