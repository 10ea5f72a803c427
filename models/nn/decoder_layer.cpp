// Decoder layer forward.
#include "models/nn/decoder_layer.hpp"

#include <torch/types.h>

namespace qerl::models {

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& config, int64_t layer_index) {
  self_attn = register_module("self_attn", Attention(config, layer_index));
  if (config.is_moe_layer(layer_index)) {
    moe = register_module(config.mlp_module_name(), SparseMoe(config));
  } else {
    mlp = register_module("mlp", SwiGLU(config.hidden_size, config.intermediate_size, config.mlp_bias));
  }
  input_layernorm = register_module("input_layernorm", RMSNorm(config.hidden_size, config.rms_norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(config.hidden_size, config.rms_norm_eps));
}

LayerOutput DecoderLayerImpl::forward(const torch::Tensor& hidden, const RopeTables& rope, const torch::Tensor& mask,
                                      KVCache* cache, const LayerRoute& route) {
  LayerOutput out;
  auto [h, normed] = post_attention_layernorm->forward_added(
      hidden, self_attn->forward(input_layernorm->forward(hidden), rope, mask, cache));
  if (moe) {
    out.moe = moe->forward(normed.reshape({-1, normed.size(-1)}), route);
    out.hidden = h + out.moe.hidden.view(h.sizes());
    out.moe.hidden = torch::Tensor();
  } else {
    out.hidden = h + mlp->forward(normed);
  }
  return out;
}

}  // namespace qerl::models
