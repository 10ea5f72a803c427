// Decoder-only causal LM for all supported architectures: `model`
// (embed_tokens, layers.N, norm) and `lm_head` (absent when tied: logits
// then use model.embed_tokens.weight). Parameter names equal the HF
// checkpoint names. One forward serves full-sequence scoring (training,
// log-probs) and cached incremental decoding (generation).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include "models/nn/linear.hpp"
#include "models/nn/decoder_layer.hpp"
#include "models/nn/kv_cache.hpp"
#include "models/nn/model_config.hpp"
#include "models/nn/routing.hpp"

namespace qerl::models {

class DecoderModelImpl : public torch::nn::Module {
 public:
  explicit DecoderModelImpl(const ModelConfig& config);

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  std::vector<DecoderLayer> layer_list;
};
TORCH_MODULE(DecoderModel);

struct ForwardArgs {
  torch::Tensor input_ids;  // [B, S] int64
  // Optional [B, S] bool or integer, nonzero = real token, 0 = padding
  // (left, right or anywhere). Undefined = all real.
  torch::Tensor attention_mask;
  // Optional [B, S] int64 RoPE positions. Undefined = count of real tokens
  // before each position in its row (plus the cache's, when decoding), which
  // is what HF generate uses; padding positions get 0.
  torch::Tensor position_ids;
  // Optional: new keys/values go to slots [cache->length, +S); length,
  // valid and next_position are advanced.
  KVCache* cache = nullptr;
  Routing routing;
  // 0 = logits for every position; n > 0 = only for the last n positions.
  int64_t logits_to_keep = 0;
};

struct ForwardOutput {
  torch::Tensor logits;   // [B, S_keep, V] model dtype (cast to float32 for log-probs)
  RoutingRecord routing;  // capture / replay: [B, S, L_moe, K] int16
};

class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(ModelConfig config);

  ForwardOutput forward(const ForwardArgs& args);

  const ModelConfig& config() const { return config_; }
  torch::ScalarType dtype() const;
  torch::Device device() const;

  // Forwards with gradients (and no KV cache) then keep only each decoder
  // layer's input and run the layer again in the backward
  // (models/nn/layer_checkpoint.hpp): less memory, one more forward.
  void set_activation_checkpointing(bool on) { activation_checkpointing_ = on; }
  bool activation_checkpointing() const { return activation_checkpointing_; }

  DecoderModel model{nullptr};
  Linear lm_head{nullptr};  // null when tie_word_embeddings

 private:
  ModelConfig config_;
  RotaryEmbedding rotary_;
  bool activation_checkpointing_ = false;
};
TORCH_MODULE(CausalLM);

// mask: [B, S] bool real tokens of this call -> [B, 1, S, S_kv] bool
// attention mask (causal, padding, sliding window; every query may attend to
// itself so that padding rows stay finite). Updates cache->valid when given.
torch::Tensor build_attention_mask(const torch::Tensor& real, KVCache* cache, std::optional<int64_t> sliding_window);

}  // namespace qerl::models
