// Grouped-query self-attention (HF names q_proj/k_proj/v_proj/o_proj, plus
// q_norm/k_norm for qwen3 and qwen3_moe). Attention itself runs through
// scaled_dot_product_attention with a boolean mask built once per forward by
// the model (causal + padding + optional sliding window).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "models/nn/kv_cache.hpp"
#include "models/nn/linear.hpp"
#include "models/nn/model_config.hpp"
#include "models/nn/rms_norm.hpp"
#include "models/nn/rotary_embedding.hpp"

namespace qerl::models {

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const ModelConfig& config, int64_t layer_index);

  // hidden: [B, S, hidden] model dtype; mask: [B, 1, S, S_kv] bool (true =
  // may attend); cache: when set, the new keys/values are written at slots
  // [cache->length, cache->length + S) and attention covers slots
  // [0, cache->length + S) (so S_kv = that); the caller advances length.
  // Returns [B, S, hidden] model dtype.
  torch::Tensor forward(const torch::Tensor& hidden, const RopeTables& rope, const torch::Tensor& mask, KVCache* cache);

  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // qwen3 / qwen3_moe only

 private:
  int64_t layer_index_;
  int64_t num_heads_;
  int64_t num_kv_heads_;
  int64_t head_dim_;
};
TORCH_MODULE(Attention);

}  // namespace qerl::models
