// One pre-norm decoder layer: x + attn(input_layernorm(x)), then
// x + mlp(post_attention_layernorm(x)), where mlp is a dense SwiGLU or a
// SparseMoe registered under the HF name ("mlp", or "block_sparse_moe" for
// mixtral).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "models/nn/attention.hpp"
#include "models/nn/sparse_moe.hpp"

namespace qerl::models {

struct LayerOutput {
  torch::Tensor hidden;  // [B, S, hidden] model dtype
  MoeOutput moe;         // routing of an MoE layer (hidden unused); empty for dense layers
};

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelConfig& config, int64_t layer_index);

  LayerOutput forward(const torch::Tensor& hidden, const RopeTables& rope, const torch::Tensor& mask, KVCache* cache,
                      const LayerRoute& route);

  bool is_moe() const { return !moe.is_empty(); }

  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Attention self_attn{nullptr};
  SwiGLU mlp{nullptr};     // dense layers
  SparseMoe moe{nullptr};  // MoE layers
};
TORCH_MODULE(DecoderLayer);

}  // namespace qerl::models
