// Packing a CausalLM's Linears into 4-bit codes (see quantize_model.hpp):
// the compressed-tensors tensor names, pack_weights, and PackedBase (codes
// installed on the Linears, repacked or reloaded on weight updates, the
// W4A4 input scales).
#include "models/quant/quantize_model.hpp"

#include <map>
#include <set>
#include <vector>

#include "common/error.hpp"

namespace qerl::models {

namespace {

constexpr const char* packed_suffixes[] = {".weight_packed", ".weight_scale", ".weight_global_scale",
                                           ".input_global_scale"};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The packed tensors of one weight `w` under `spec` (global_scale used for NVFP4).
void pack_one(const torch::Tensor& w, const QuantSpec& spec, float global_scale, torch::Tensor& packed,
              torch::Tensor& scale, torch::Tensor& global) {
  if (spec.scheme == QuantScheme::nvfp4) {
    kernels::Nvfp4Weight q = kernels::nvfp4_quantize(w, global_scale);
    packed = q.packed;
    scale = q.block_scale;
    global = q.global_scale;
  } else {
    kernels::Mxfp4Weight q = kernels::mxfp4_quantize(w);
    packed = q.packed;
    scale = q.scale;
    global = torch::Tensor();
  }
}

}  // namespace

bool is_packed_tensor_name(const std::string& name) {
  for (const char* suffix : packed_suffixes)
    if (ends_with(name, suffix)) return true;
  return false;
}

std::string packed_module_name(const std::string& name) {
  const std::string suffix = ".weight_packed";
  return ends_with(name, suffix) ? name.substr(0, name.size() - suffix.size()) : std::string();
}

TensorMap pack_weights(const std::vector<QuantTarget>& targets, const QuantSpec& spec) {
  torch::NoGradGuard no_grad;
  const auto scales = fused_global_scales(targets, spec);
  TensorMap out;
  for (const auto& t : targets) {
    torch::Tensor packed, scale, global;
    const float g = spec.scheme == QuantScheme::nvfp4 ? scales.at(t.fusion_group) : 0.f;
    pack_one(t.linear->weight.detach(), spec, g, packed, scale, global);
    out[t.name + ".weight_packed"] = packed;
    out[t.name + ".weight_scale"] = scale;
    if (global.defined()) out[t.name + ".weight_global_scale"] = global;
  }
  return out;
}

PackedBase::PackedBase(CausalLMImpl& lm, const QuantSpec& spec, Residency residency,
                       std::optional<torch::Device> device)
    : lm_(&lm), spec_(spec), release_dense_(residency == Residency::codes_only) {
  if (spec.scheme == QuantScheme::none) throw Error("PackedBase: quantization.scheme is \"none\"");
  targets_ = plan_quantization(lm, spec, &summary_);
  for (size_t i = 0; i < targets_.size(); ++i) packed_.push_back(std::make_shared<Packed>());
  if (!device) {
    repack();
    release();
    return;
  }
  std::map<std::string, std::vector<size_t>> groups;  // fusion group -> its members
  for (size_t i = 0; i < targets_.size(); ++i) groups[targets_[i].fusion_group].push_back(i);
  for (const auto& [group, members] : groups) {
    std::vector<torch::Tensor> weights;
    for (size_t i : members) {
      torch::Tensor& w = targets_[i].linear->weight;
      {
        torch::NoGradGuard no_grad;
        w.set_data(w.to(*device));
      }
      weights.push_back(w.detach());
    }
    pack_from(members, weights);
    for (size_t i : members) packed_[i]->version = targets_[i].linear->weight._version();
    if (release_dense_)
      for (size_t i : members) targets_[i].linear->release_dense_weight();
  }
  released_ = release_dense_;
}

PackedBase::PackedBase(CausalLMImpl& lm, const QuantSpec& spec, const TensorMap& packed, Residency residency)
    : lm_(&lm), spec_(spec), release_dense_(residency == Residency::codes_only) {
  if (spec.scheme == QuantScheme::none) throw Error("PackedBase: quantization.scheme is \"none\"");
  std::vector<std::string> names;
  for (const auto& [name, tensor] : packed)
    if (const std::string module = packed_module_name(name); !module.empty()) names.push_back(module);
  if (names.empty()) throw Error("PackedBase: no weight_packed tensor among the stored tensors");
  targets_ = named_targets(lm, names, spec);
  // The summary counts what the stored layout quantized and left alone.
  std::set<std::string> packed_names(names.begin(), names.end());
  for (const auto& item : lm.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    const auto* linear = item.value()->as<LinearImpl>();
    if (linear == nullptr) continue;
    const int64_t numel = linear->out_features() * linear->in_features();
    if (!packed_names.count(item.key())) {
      if (linear->in_features() % group_size(spec.scheme) != 0) {  // as plan_quantization counts them
        ++summary_.unsupported;
        summary_.unsupported_names.push_back(item.key());
      } else {
        ++summary_.ignored;
      }
    } else {
      ++summary_.quantized;
      summary_.bytes_before += numel * static_cast<int64_t>(linear->weight.element_size());
      summary_.bytes_after += packed_bytes(spec.scheme, numel);
    }
  }
  for (size_t i = 0; i < targets_.size(); ++i) packed_.push_back(std::make_shared<Packed>());
  load_packed(packed);
  release();
}

void PackedBase::release() {
  if (!release_dense_) return;
  for (auto& t : targets_) t.linear->release_dense_weight();
  released_ = true;
}

PackedBase::~PackedBase() {
  for (auto& t : targets_) {
    // A released Linear has no other weight: it keeps computing with its codes.
    if (!t.linear->dense_released()) t.linear->clear_codes();
    t.linear->set_input_hook({});
  }
}

namespace {

bool same_layout(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.defined() != b.defined()) return false;
  return !a.defined() || (a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() && a.device() == b.device());
}

bool same_layout(const kernels::Fp4Weight& a, const kernels::Fp4Weight& b) {
  return same_layout(a.packed, b.packed) && same_layout(a.scale, b.scale) && same_layout(a.global_scale, b.global_scale);
}

}  // namespace

void PackedBase::install(size_t i, torch::Tensor packed, torch::Tensor scale, torch::Tensor global) {
  const torch::Device device = targets_[i].linear->weight.device();
  kernels::Fp4Weight fresh = kernels::Fp4Weight{packed, scale, global}.to(device);
  if (const auto& held = packed_[i]->codes; held && same_layout(*held, fresh)) {
    // New codes go into the tensors the Linear already computes with, so
    // that their addresses (captured by a sampling engine's CUDA graphs)
    // stay valid.
    held->packed.copy_(fresh.packed);
    held->scale.copy_(fresh.scale);
    if (held->global_scale.defined()) held->global_scale.copy_(fresh.global_scale);
    return;
  }
  // New codes of their own: never the caller's tensors (or a map it keeps),
  // which a later repack in place would overwrite.
  const auto own = [](const torch::Tensor& moved, const torch::Tensor& given) {
    return moved.defined() && given.defined() && moved.is_same(given) ? moved.clone() : moved;
  };
  fresh = {own(fresh.packed, packed), own(fresh.scale, scale), own(fresh.global_scale, global)};
  auto codes = std::make_shared<kernels::Fp4Weight>(std::move(fresh));
  targets_[i].linear->set_codes(codes);
  packed_[i]->codes = std::move(codes);
}

void PackedBase::pack_from(const std::vector<size_t>& members, const std::vector<torch::Tensor>& weights) {
  torch::NoGradGuard no_grad;
  std::map<std::string, float> scales;  // each fusion group's min G over the given members
  if (spec_.scheme == QuantScheme::nvfp4) {
    const std::vector<float> gs = kernels::nvfp4_global_scales(weights);  // one host read on a GPU
    for (size_t k = 0; k < members.size(); ++k) {
      auto [it, fresh] = scales.emplace(targets_[members[k]].fusion_group, gs[k]);
      if (!fresh) it->second = std::min(it->second, gs[k]);
    }
  }
  for (size_t k = 0; k < members.size(); ++k) {
    const size_t i = members[k];
    const torch::Tensor& w = weights[k];
    torch::Tensor packed, scale, global;
    const float g = spec_.scheme == QuantScheme::nvfp4 ? scales.at(targets_[i].fusion_group) : 0.f;
    pack_one(w, spec_, g, packed, scale, global);
    install(i, packed, scale, global);
    Packed& p = *packed_[i];
    p.error = kernels::fp4_error_sums(w, *p.codes);  // on the device: read once, by sqnr_db
    p.loaded = false;
  }
}

void PackedBase::repack() {
  if (released_) return;  // no dense weight left to change
  std::vector<size_t> changed;
  for (size_t i = 0; i < targets_.size(); ++i)
    if (targets_[i].linear->weight._version() != packed_[i]->version) changed.push_back(i);
  if (changed.empty()) return;
  // Fused siblings share one global scale, so a changed member repacks its whole group.
  std::set<std::string> groups;
  for (size_t i : changed) groups.insert(targets_[i].fusion_group);
  std::vector<size_t> members;
  std::vector<torch::Tensor> weights;
  for (size_t i = 0; i < targets_.size(); ++i) {
    if (!groups.count(targets_[i].fusion_group)) continue;
    members.push_back(i);
    weights.push_back(targets_[i].linear->weight.detach());
  }
  pack_from(members, weights);
  for (size_t i : members) packed_[i]->version = targets_[i].linear->weight._version();
}

void PackedBase::load_dense(const TensorMap& weights) {
  std::vector<size_t> members;
  std::vector<torch::Tensor> tensors;
  for (size_t i = 0; i < targets_.size(); ++i) {
    const std::string name = targets_[i].name + ".weight";
    const auto it = weights.find(name);
    if (it == weights.end()) throw Error("dense weights: " + name + " is missing (the packed base repacks every target)");
    const LinearImpl& linear = *targets_[i].linear;
    if (it->second.sizes() != torch::IntArrayRef{linear.out_features(), linear.in_features()})
      throw Error("dense weights: " + name + " has shape " + c10::str(it->second.sizes()) + ", the Linear is [" +
                  std::to_string(linear.out_features()) + ", " + std::to_string(linear.in_features()) + "]");
    members.push_back(i);
    // Packed from the model dtype, as repack() packs the Linear's own weight.
    tensors.push_back(it->second.detach().to(linear.weight.device(), linear.weight.scalar_type()));
  }
  pack_from(members, tensors);
  if (!release_dense_) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < targets_.size(); ++i) {
      targets_[i].linear->weight.copy_(tensors[i]);
      packed_[i]->version = targets_[i].linear->weight._version();
    }
  }
}

void PackedBase::load_packed(const TensorMap& packed) {
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  const auto take = [&](const std::string& name, bool required) -> torch::Tensor {
    const auto it = packed.find(name);
    if (it == packed.end()) {
      if (required) throw Error("packed weights: " + name + " is missing");
      return {};
    }
    used.insert(name);
    return it->second;
  };
  const bool nvfp4 = spec_.scheme == QuantScheme::nvfp4;
  for (size_t i = 0; i < targets_.size(); ++i) {
    const std::string& name = targets_[i].name;
    LinearImpl& linear = *targets_[i].linear;
    Packed& p = *packed_[i];
    const torch::Tensor codes = take(name + ".weight_packed", true);
    const torch::Tensor scale = take(name + ".weight_scale", true);
    const torch::Tensor global = nvfp4 ? take(name + ".weight_global_scale", true) : torch::Tensor();
    if (!nvfp4 && packed.count(name + ".weight_global_scale"))
      throw Error("packed weights: " + name + ".weight_global_scale given for MXFP4, which has none");
    const int64_t out = linear.out_features(), in = linear.in_features();
    if (codes.sizes() != torch::IntArrayRef{out, in / 2})
      throw Error("packed weights: " + name + ".weight_packed has shape " + c10::str(codes.sizes()) + ", the [" +
                  std::to_string(out) + ", " + std::to_string(in) + "] weight needs [" + std::to_string(out) + ", " +
                  std::to_string(in / 2) + "]");
    try {
      install(i, codes, scale, global);
    } catch (const Error& e) {
      throw Error("packed weights: " + name + ": " + e.what());
    }
    if (!linear.dense_released()) {
      linear.weight.copy_(linear.effective_weight());  // the dense copy agrees with the codes
      p.version = linear.weight._version();
    }
    p.loaded = true;
    take(name + ".input_global_scale", false);  // read by load_input_scales
  }
  for (const auto& [name, tensor] : packed)
    if (!used.count(name)) throw Error("packed weights: " + name + " belongs to no packed Linear of this model");
  load_input_scales(packed);
}

TensorMap PackedBase::packed_tensors() const {
  TensorMap out;
  for (size_t i = 0; i < targets_.size(); ++i) {
    const std::string& name = targets_[i].name;
    const kernels::Fp4Weight& codes = *packed_[i]->codes;
    // Copies: the codes are repacked in place later.
    const auto host_copy = [](const torch::Tensor& t) { return t.is_cpu() ? t.clone() : t.cpu(); };
    out[name + ".weight_packed"] = host_copy(codes.packed);
    out[name + ".weight_scale"] = host_copy(codes.scale);
    if (codes.nvfp4()) out[name + ".weight_global_scale"] = host_copy(codes.global_scale);
    if (inputs_calibrated_)
      out[name + ".input_global_scale"] = torch::full({1}, input_global_scale(name), torch::kFloat32);
  }
  return out;
}

int64_t PackedBase::code_bytes() const {
  int64_t n = 0;
  for (const auto& p : packed_) n += p->codes->bytes();
  return n;
}

void PackedBase::load_input_scales(const TensorMap& packed) {
  std::map<std::string, float> scales;
  for (const auto& t : targets_) {
    const auto it = packed.find(t.name + ".input_global_scale");
    if (it != packed.end()) scales[t.name] = it->second.to(torch::kFloat).reshape({-1})[0].item<float>();
  }
  if (scales.empty()) return;
  if (!spec_.quantize_inputs)
    throw Error("packed weights: input_global_scale given, but the inputs are not quantized (W4A16)");
  if (scales.size() != targets_.size())
    throw Error("packed weights: input_global_scale given for " + std::to_string(scales.size()) + " of " +
                std::to_string(targets_.size()) + " packed Linear modules");
  input_global_scales_ = std::move(scales);
  install_input_hooks();
}

std::optional<double> PackedBase::sqnr_db() const {
  // Stacked and summed per device, then read: one host read per device.
  std::map<std::string, std::vector<torch::Tensor>> per_device;
  for (const auto& p : packed_) {
    if (p->loaded || !p->error.defined()) return std::nullopt;
    per_device[p->error.device().str()].push_back(p->error);
  }
  double signal = 0, noise = 0;
  for (const auto& [device, errors] : per_device) {
    const torch::Tensor host = torch::stack(errors).sum(0).cpu();
    signal += host[0].item<double>();
    noise += host[1].item<double>();
  }
  return noise > 0 ? 10 * std::log10(signal / noise) : std::numeric_limits<double>::infinity();
}

void PackedBase::install_input_hooks() {
  for (const auto& t : targets_) {
    const float g = input_global_scales_.at(t.name);
    const QuantScheme scheme = spec_.scheme;
    t.linear->set_input_hook([scheme, g](const torch::Tensor& x) { return fake_quantize_input(x, scheme, g); });
  }
  inputs_calibrated_ = true;
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
    input_global_scales_[targets_[i].name] = a > 0 ? 448.f * 6.f / a : 1.f;
  }
  install_input_hooks();
}

float PackedBase::input_global_scale(const std::string& name) const {
  const auto it = input_global_scales_.find(name);
  return it == input_global_scales_.end() ? 0.f : it->second;
}

}  // namespace qerl::models
