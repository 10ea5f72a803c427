// Planning weight quantization over a CausalLM, fake-quantized inputs and
// QAT (see quantize_model.hpp; the packed base is packed_base.cpp). Fusion groups follow the module names inference
// engines fuse: q_proj/k_proj/v_proj of one attention, gate_proj/up_proj
// (Mixtral: w1/w3) of one MLP or expert.
#include "models/quant/quantize_model.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "common/name_pattern.hpp"

namespace qerl::models {
namespace {

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
    const int64_t numel = linear->out_features() * linear->in_features();
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

std::vector<QuantTarget> named_targets(CausalLMImpl& lm, const std::vector<std::string>& names, const QuantSpec& spec) {
  std::set<std::string> wanted(names.begin(), names.end());
  std::vector<QuantTarget> targets;
  for (const auto& item : lm.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    if (!wanted.count(item.key())) continue;
    auto* linear = item.value()->as<LinearImpl>();
    if (linear == nullptr) throw Error("packed tensors for " + item.key() + ", which is not a Linear module");
    targets.push_back({item.key(), linear, spec.fuse_scales ? fusion_group_of(item.key()) : item.key()});
    wanted.erase(item.key());
  }
  if (!wanted.empty()) throw Error("packed tensors for " + *wanted.begin() + ", which the model does not have");
  return targets;
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
      if (scheme != QuantScheme::nvfp4) return kernels::mxfp4_fake_quantize_ste(w);
      {
        torch::NoGradGuard no_grad;
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
      }
      // Straight-through: the value is fake_quantize(w), the gradient flows to w unchanged.
      return kernels::nvfp4_fake_quantize_ste(w, scales->at(group));
    });
  }
  return summary;
}

}  // namespace qerl::models
