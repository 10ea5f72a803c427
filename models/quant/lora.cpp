// LoRA adapters (see lora.hpp): matching target modules PEFT-style, drawing
// A, and the adapter hook y += scale * (dropout(x) A^T) B^T computed in
// x's dtype from the fp32 leaves.
#include "models/quant/lora.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <memory>

#include "common/error.hpp"
#include "common/name_pattern.hpp"

namespace qerl::models {
namespace {

// The "re:" entries of a target list, or the others (leaf names).
std::vector<std::string> target_entries(const std::vector<std::string>& names, bool regex) {
  std::vector<std::string> out;
  for (const auto& name : names)
    if ((name.rfind("re:", 0) == 0) == regex) out.push_back(name);
  return out;
}

}  // namespace

LoraTargets::LoraTargets(const std::vector<std::string>& target_modules, const std::string& context)
    : leaves_(target_entries(target_modules, /*regex=*/false)),
      patterns_(target_entries(target_modules, /*regex=*/true), context) {}

bool LoraTargets::selects(const std::string& name) {
  for (const auto& leaf : leaves_)
    if (name == leaf || (name.size() > leaf.size() && name.compare(name.size() - leaf.size(), leaf.size(), leaf) == 0 &&
                         name[name.size() - leaf.size() - 1] == '.'))
      return true;
  return patterns_.matches(name);
}

LoraAdapters::LoraAdapters(CausalLMImpl& lm, const LoraConfig& config, uint64_t seed) {
  if (config.rank < 1) throw Error("lora.rank must be at least 1, got " + std::to_string(config.rank));
  scale_ = config.alpha / static_cast<double>(config.rank);
  dropout_ = config.dropout;
  LoraTargets targets(config.target_modules, "lora.target_modules");
  auto generator = at::detail::createCPUGenerator(seed);
  for (const auto& item : lm.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    auto* linear = item.value()->as<LinearImpl>();
    if (linear == nullptr || !targets.selects(item.key())) continue;
    const int64_t in = linear->in_features(), out = linear->out_features();
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    Adapter adapter;
    adapter.name = item.key();
    adapter.linear = linear;
    adapter.a = (torch::rand({config.rank, in}, generator, torch::kFloat) * (2 * bound) - bound)
                    .to(linear->weight.device())
                    .requires_grad_(true);
    adapter.b = torch::zeros({out, config.rank}, torch::dtype(torch::kFloat).device(linear->weight.device()))
                    .requires_grad_(true);
    adapters_.push_back(std::move(adapter));
  }
  if (adapters_.empty()) throw Error("lora.target_modules: no Linear module matches");
  for (auto& adapter : adapters_) {
    const torch::Tensor a = adapter.a, b = adapter.b;
    const double scale = scale_;
    const double p = dropout_;
    const bool* training = &training_;
    adapter.linear->set_adapter_hook([a, b, scale, p, training](const torch::Tensor& x) {
      torch::Tensor in = p > 0 && *training ? torch::dropout(x, p, /*train=*/true) : x;
      // [..., in] @ [in, r] @ [r, out], in x's dtype.
      return torch::matmul(torch::matmul(in, a.to(x.scalar_type()).t()), b.to(x.scalar_type()).t()) * scale;
    });
    adapter.linear->set_low_rank_adapter(
        LinearImpl::LowRankAdapter{a, b, scale, [p, training] { return p > 0 && *training; }});
  }
}

LoraAdapters::~LoraAdapters() {
  for (auto& adapter : adapters_) {
    adapter.linear->set_adapter_hook({});
    adapter.linear->set_low_rank_adapter(std::nullopt);
  }
}

std::vector<torch::Tensor> LoraAdapters::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& adapter : adapters_) {
    out.push_back(adapter.a);
    out.push_back(adapter.b);
  }
  return out;
}

std::vector<std::string> LoraAdapters::parameter_names() const {
  std::vector<std::string> out;
  for (const auto& adapter : adapters_) {
    out.push_back(adapter.name + ".lora_A.weight");
    out.push_back(adapter.name + ".lora_B.weight");
  }
  return out;
}

std::map<std::string, torch::Tensor> LoraAdapters::tensors() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& adapter : adapters_) {
    out[adapter.name + ".lora_A.weight"] = adapter.a.detach().clone();
    out[adapter.name + ".lora_B.weight"] = adapter.b.detach().clone();
  }
  return out;
}

void LoraAdapters::load(const std::map<std::string, torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  for (auto& adapter : adapters_) {
    for (auto [suffix, target] : {std::pair<const char*, torch::Tensor*>{".lora_A.weight", &adapter.a},
                                  std::pair<const char*, torch::Tensor*>{".lora_B.weight", &adapter.b}}) {
      const std::string name = adapter.name + suffix;
      const auto it = tensors.find(name);
      if (it == tensors.end()) throw Error("LoRA tensors: " + name + " is missing");
      if (it->second.sizes() != target->sizes())
        throw Error("LoRA tensors: " + name + " has the wrong shape");
      target->copy_(it->second.to(target->device(), torch::kFloat));
    }
  }
}

int64_t LoraAdapters::num_parameters() const {
  int64_t n = 0;
  for (const auto& adapter : adapters_) n += adapter.a.numel() + adapter.b.numel();
  return n;
}

}  // namespace qerl::models
