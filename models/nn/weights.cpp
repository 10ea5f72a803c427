// Weight layout conversion, load/save/init of CausalLM parameters.
#include "models/nn/weights.hpp"

#include <cstdio>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "common/error.hpp"

namespace qerl::models {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

std::string shape_of(const torch::Tensor& t) {
  return c10::str(t.sizes());
}

// One fused expert tensor [E, ...] -> per-expert tensors named
// prefix + "N." + name + ".weight".
void split_experts(TensorMap& out, const std::string& prefix, const torch::Tensor& fused,
                   const std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>>& parts) {
  for (int64_t e = 0; e < fused.size(0); ++e) {
    for (const auto& [name, range] : parts)
      out[prefix + std::to_string(e) + "." + name + ".weight"] = fused[e].narrow(0, range.first, range.second);
  }
}

}  // namespace

TensorMap to_qerl_layout(const TensorMap& tensors, const ModelConfig& config) {
  const bool mixtral = config.architecture == Architecture::mixtral;
  const auto names = mixtral ? SwiGLUNames::mixtral() : SwiGLUNames{};
  const int64_t width = config.moe_intermediate_size;
  TensorMap out;
  for (const auto& [original, tensor] : tensors) {
    std::string name = mixtral ? replace_all(original, ".mlp.", ".block_sparse_moe.") : original;
    if (ends_with(name, "rotary_emb.inv_freq")) continue;
    if (config.tie_word_embeddings && name == "lm_head.weight") continue;  // HF ignores it too
    if (ends_with(name, ".experts.gate_up_proj")) {
      if (tensor.dim() != 3 || tensor.size(1) != 2 * width || tensor.size(2) != config.hidden_size)
        throw Error(original + ": fused experts of shape " + shape_of(tensor) + ", expected [E, " +
                    std::to_string(2 * width) + ", " + std::to_string(config.hidden_size) + "]");
      const std::string prefix = name.substr(0, name.size() - std::string("gate_up_proj").size());
      split_experts(out, prefix, tensor, {{names.gate, {0, width}}, {names.up, {width, width}}});
    } else if (ends_with(name, ".experts.down_proj")) {
      if (tensor.dim() != 3 || tensor.size(1) != config.hidden_size || tensor.size(2) != width)
        throw Error(original + ": fused experts of shape " + shape_of(tensor) + ", expected [E, " +
                    std::to_string(config.hidden_size) + ", " + std::to_string(width) + "]");
      const std::string prefix = name.substr(0, name.size() - std::string("down_proj").size());
      split_experts(out, prefix, tensor, {{names.down, {0, config.hidden_size}}});
    } else {
      out[name] = tensor;
    }
  }
  return out;
}

namespace {

// Parameter names of Linear weights whose dense storage was released (the
// layer computes with codes): they hold no values to load or export.
std::set<std::string> released_weights(CausalLMImpl& lm) {
  std::set<std::string> out;
  for (const auto& item : lm.named_modules(/*name_prefix=*/"", /*include_self=*/false))
    if (const auto* linear = item.value()->as<LinearImpl>(); linear && linear->dense_released())
      out.insert(item.key() + ".weight");
  return out;
}

}  // namespace

void load_weights(CausalLMImpl& lm, const TensorMap& tensors) {
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  std::vector<std::string> missing;
  const std::set<std::string> released = released_weights(lm);
  for (auto& item : lm.named_parameters(/*recurse=*/true)) {
    if (released.count(item.key())) continue;
    auto found = tensors.find(item.key());
    if (found == tensors.end()) {
      missing.push_back(item.key());
      continue;
    }
    auto& param = item.value();
    if (found->second.sizes() != param.sizes())
      throw Error("checkpoint tensor " + item.key() + " has shape " + shape_of(found->second) + ", model expects " +
                  shape_of(param));
    param.copy_(found->second);
    used.insert(item.key());
  }
  if (!missing.empty())
    throw Error("checkpoint lacks " + std::to_string(missing.size()) + " tensor(s), first: " + missing.front());
  for (const auto& [name, tensor] : tensors) {
    if (released.count(name))
      throw Error("tensor " + name + ": the layer computes with 4-bit codes and holds no dense weight to set");
    if (used.count(name) == 0) throw Error("checkpoint has a tensor the model does not: " + name);
  }
}

TensorMap export_weights(CausalLMImpl& lm) {
  TensorMap out;
  const std::set<std::string> released = released_weights(lm);
  for (auto& item : lm.named_parameters(/*recurse=*/true))
    if (!released.count(item.key())) out[item.key()] = item.value().detach().to(torch::kCPU).contiguous();
  return out;
}

void init_weights(CausalLMImpl& lm, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(seed);
  const double std = lm.config().initializer_range;
  for (auto& item : lm.named_parameters(/*recurse=*/true)) {
    const auto& name = item.key();
    auto& param = item.value();
    if (ends_with(name, "norm.weight")) {
      param.fill_(1.0);
    } else if (ends_with(name, ".bias")) {
      param.zero_();
    } else {
      // Draw in float32 on CPU so that a seed gives the same weights in any dtype/device.
      auto values = torch::empty(param.sizes(), torch::kFloat).normal_(0.0, std, generator);
      param.copy_(values);
    }
  }
  const auto& pad = lm.config().pad_token_id;
  if (pad && *pad >= 0 && *pad < lm.config().vocab_size) lm.model->embed_tokens->weight[*pad].zero_();
}

CausalLM load_causal_lm(const std::filesystem::path& dir, const LoadOptions& options) {
  // The config first: an unsupported model fails before any weights are mapped.
  const ModelConfig config = load_model_config((dir / "config.json").string());
  if (config.raw.contains("quantization_config"))
    throw Error((dir / "config.json").string() +
                ": quantization_config: a quantized checkpoint; this reads dense weights only (qerl-run, "
                "qerl-model and qerl-merge read compressed-tensors folders)");
  Checkpoint checkpoint = load_checkpoint(dir);
  const auto dtype = options.dtype.value_or(config.dtype);
  CausalLM lm(config);
  lm->to(options.device, dtype);
  try {
    load_weights(*lm, to_qerl_layout(checkpoint.tensors, config));
  } catch (const Error& e) {
    throw Error(dir.string() + ": " + e.what());
  }
  lm->eval();
  return lm;
}

void save_causal_lm(const std::filesystem::path& dir, CausalLMImpl& lm) {
  nlohmann::json config = lm.config().raw;
  config.erase("quantization_config");  // the weights written are dense, whatever was loaded
  config["dtype"] = dtype_name(lm.dtype());
  if (config.contains("torch_dtype")) config["torch_dtype"] = dtype_name(lm.dtype());
  save_checkpoint(dir, config, export_weights(lm));
}

ParameterCount count_parameters(CausalLMImpl& lm) {
  ParameterCount count;
  for (auto& param : lm.parameters(/*recurse=*/true)) count.total += param.numel();
  count.active = count.total;
  const auto& config = lm.config();
  for (auto& layer : lm.model->layer_list) {
    if (!layer->is_moe()) continue;
    int64_t per_expert = 0;
    for (auto& param : layer->moe->experts[0]->parameters()) per_expert += param.numel();
    count.active -= (config.num_experts - config.num_experts_per_tok) * per_expert;
  }
  return count;
}


std::string ResidentWeights::describe() const {
  const auto mib = [](int64_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
    return std::string(text);
  };
  char ratio_text[32];
  std::snprintf(ratio_text, sizeof ratio_text, "%.3fx", ratio());
  return mib(bytes()) + " (codes " + mib(code_bytes) + " + dense " + mib(dense_bytes) + ") = " + ratio_text +
         " the " + mib(bf16_bytes) + " of its bf16 weights";
}

ResidentWeights resident_weights(CausalLMImpl& lm) {
  ResidentWeights out;
  const std::set<std::string> released = released_weights(lm);
  for (const auto& item : lm.named_parameters(/*recurse=*/true)) {
    const torch::Tensor& p = item.value();
    out.dense_bytes += p.numel() * static_cast<int64_t>(p.element_size());
    if (!released.count(item.key())) out.bf16_bytes += 2 * p.numel();
  }
  for (const auto& item : lm.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    const auto* linear = item.value()->as<LinearImpl>();
    if (linear == nullptr || linear->codes() == nullptr) continue;
    out.code_bytes += linear->codes()->bytes();
    if (linear->dense_released()) out.bf16_bytes += 2 * linear->out_features() * linear->in_features();
  }
  return out;
}

}  // namespace qerl::models
