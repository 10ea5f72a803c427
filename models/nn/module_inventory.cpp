// module_inventory: CausalLM's modules from its config (see module_inventory.hpp).
#include "models/nn/module_inventory.hpp"

namespace qerl::models {
namespace {

void add_linear(std::vector<ModuleShape>& out, std::string name, int64_t in, int64_t out_features, bool bias) {
  out.push_back({std::move(name), ModuleKind::linear, in, out_features, bias});
}

void add_norm(std::vector<ModuleShape>& out, std::string name, int64_t dim) {
  out.push_back({std::move(name), ModuleKind::rms_norm, dim, 0, false});
}

// SwiGLU registers gate, up, down in that order (mixtral: w1, w3, w2).
void add_swiglu(std::vector<ModuleShape>& out, const std::string& prefix, const ModelConfig& c, int64_t width,
                bool bias) {
  const bool mixtral = c.architecture == Architecture::mixtral;
  add_linear(out, prefix + (mixtral ? "w1" : "gate_proj"), c.hidden_size, width, bias);
  add_linear(out, prefix + (mixtral ? "w3" : "up_proj"), c.hidden_size, width, bias);
  add_linear(out, prefix + (mixtral ? "w2" : "down_proj"), width, c.hidden_size, bias);
}

}  // namespace

int64_t ModuleShape::weight_numel() const {
  switch (kind) {
    case ModuleKind::linear:
    case ModuleKind::embedding: return in_features * out_features;
    case ModuleKind::rms_norm: break;
  }
  return in_features;
}

int64_t ModuleShape::parameter_numel() const {
  return weight_numel() + (kind == ModuleKind::linear && bias ? out_features : 0);
}

std::vector<ModuleShape> module_inventory(const ModelConfig& c) {
  std::vector<ModuleShape> out;
  out.push_back({"model.embed_tokens", ModuleKind::embedding, c.hidden_size, c.vocab_size, false});
  const int64_t q_width = c.num_attention_heads * c.head_dim, kv_width = c.num_key_value_heads * c.head_dim;
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    add_linear(out, p + "self_attn.q_proj", c.hidden_size, q_width, c.qkv_bias);
    add_linear(out, p + "self_attn.k_proj", c.hidden_size, kv_width, c.qkv_bias);
    add_linear(out, p + "self_attn.v_proj", c.hidden_size, kv_width, c.qkv_bias);
    add_linear(out, p + "self_attn.o_proj", q_width, c.hidden_size, c.o_bias);
    if (c.qk_norm) {
      add_norm(out, p + "self_attn.q_norm", c.head_dim);
      add_norm(out, p + "self_attn.k_norm", c.head_dim);
    }
    if (c.is_moe_layer(layer)) {
      const std::string moe = p + c.mlp_module_name() + ".";
      add_linear(out, moe + "gate", c.hidden_size, c.num_experts, false);
      for (int64_t e = 0; e < c.num_experts; ++e)
        add_swiglu(out, moe + "experts." + std::to_string(e) + ".", c, c.moe_intermediate_size, false);
      if (c.shared_expert_intermediate_size > 0) {
        add_swiglu(out, moe + "shared_expert.", c, c.shared_expert_intermediate_size, false);
        add_linear(out, moe + "shared_expert_gate", c.hidden_size, 1, false);
      }
    } else {
      add_swiglu(out, p + "mlp.", c, c.intermediate_size, c.mlp_bias);
    }
    add_norm(out, p + "input_layernorm", c.hidden_size);
    add_norm(out, p + "post_attention_layernorm", c.hidden_size);
  }
  add_norm(out, "model.norm", c.hidden_size);
  if (!c.tie_word_embeddings) add_linear(out, "lm_head", c.hidden_size, c.vocab_size, false);
  return out;
}

}  // namespace qerl::models
