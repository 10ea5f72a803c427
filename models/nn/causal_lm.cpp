// CausalLM forward: embeddings, attention mask and RoPE positions, the
// decoder stack with per-layer routing, final norm and the LM head.
#include "models/nn/causal_lm.hpp"

#include <torch/nn/functional/linear.h>
#include <torch/types.h>

#include <limits>

#include "common/error.hpp"
#include "models/nn/layer_checkpoint.hpp"
#include "models/nn/model_size.hpp"
#if QERL_CUDA
#include "kernels/cuda/decoder_ops_torch.hpp"
#endif

namespace qerl::models {

DecoderModelImpl::DecoderModelImpl(const ModelConfig& config) {
  // As HF, the pad token's row gets no gradient (padding_idx).
  auto embedding = torch::nn::EmbeddingOptions(config.vocab_size, config.hidden_size);
  if (config.pad_token_id && *config.pad_token_id >= 0 && *config.pad_token_id < config.vocab_size)
    embedding.padding_idx(*config.pad_token_id);
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(embedding));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    layer_list.emplace_back(config, i);
    layers->push_back(layer_list.back());
  }
  norm = register_module("norm", RMSNorm(config.hidden_size, config.rms_norm_eps));
}

CausalLMImpl::CausalLMImpl(ModelConfig config)
    // The memory check comes first: an absurd config fails before any allocation.
    : config_(require_memory_for(std::move(config))), rotary_(config_.head_dim, config_.rope_theta) {
  model = register_module("model", DecoderModel(config_));
  if (!config_.tie_word_embeddings) {
    lm_head = register_module(
        "lm_head", Linear(config_.hidden_size, config_.vocab_size, /*bias=*/false));
  }
}

torch::ScalarType CausalLMImpl::dtype() const {
  return model->norm->weight.scalar_type();
}
torch::Device CausalLMImpl::device() const {
  return model->norm->weight.device();
}

torch::Tensor build_attention_mask(const torch::Tensor& real, KVCache* cache, std::optional<int64_t> sliding_window) {
  const int64_t seq = real.size(1);
  if (cache != nullptr && cache->is_static()) {
    // One query per row at the device-side slot, keys over the whole
    // capacity: [B, 1, 1, S_max]. The query's own slot is always allowed.
    cache->valid.index_fill_(1, cache->slot, true);
    auto mask = cache->valid;
    if (sliding_window) {
      auto key_slot = torch::arange(cache->capacity(), cache->slot.options());
      mask = mask & (key_slot > cache->slot - *sliding_window).unsqueeze(0);
    }
    return mask.unsqueeze(1).unsqueeze(1);
  }
  const int64_t start = cache != nullptr ? cache->length : 0;
  torch::Tensor key_valid = real;  // [B, S_kv]
  if (cache != nullptr) {
    cache->valid.narrow(1, start, seq).copy_(real);
    key_valid = cache->valid.narrow(1, 0, start + seq);
  }
  const auto options = torch::TensorOptions().dtype(torch::kLong).device(real.device());
  auto query_slot = torch::arange(start, start + seq, options).unsqueeze(1);  // [S, 1]
  auto key_slot = torch::arange(0, start + seq, options).unsqueeze(0);        // [1, S_kv]
  auto allowed = key_slot <= query_slot;                                      // [S, S_kv]
  if (sliding_window) allowed = allowed & (key_slot > query_slot - *sliding_window);
  auto mask = allowed.unsqueeze(0) & key_valid.unsqueeze(1);  // [B, S, S_kv]
  mask = mask | (key_slot == query_slot).unsqueeze(0);
  return mask.unsqueeze(1);
}

namespace {

// real: [B, S] bool -> [B, S] int64 positions (see ForwardArgs::position_ids).
torch::Tensor default_positions(const torch::Tensor& real, KVCache* cache) {
  auto positions = real.to(torch::kLong).cumsum(1) - 1;
  if (cache != nullptr) positions = positions + cache->next_position.unsqueeze(1);
  return positions.clamp_min(0);
}

void check_replay(const Routing& routing, const ModelConfig& config, int64_t batch, int64_t seq) {
  const auto& indices = routing.indices;
  const int64_t moe_layers = config.num_moe_layers();
  if (!indices.defined() || indices.dim() != 4 || indices.size(0) != batch || indices.size(1) != seq ||
      indices.size(2) != moe_layers || indices.size(3) != config.num_experts_per_tok)
    throw Error("routing replay: expected indices [" + std::to_string(batch) + ", " + std::to_string(seq) + ", " +
                std::to_string(moe_layers) + ", " + std::to_string(config.num_experts_per_tok) + "], got " +
                (indices.defined() ? c10::str(indices.sizes()) : std::string("none")));
  if (routing.replay_mask.defined() && routing.replay_mask.sizes() != torch::IntArrayRef{batch, seq})
    throw Error("routing replay: replay_mask must be [B, S]");
  if ((indices < 0).logical_or(indices >= config.num_experts).any().item<bool>())
    throw Error("routing replay: expert index out of range [0, " + std::to_string(config.num_experts) + ")");
}

}  // namespace

ForwardOutput CausalLMImpl::forward(const ForwardArgs& args) {
  const auto& input_ids = args.input_ids;
  if (!input_ids.defined() || input_ids.dim() != 2) throw Error("CausalLM: input_ids must be [B, S]");
  const int64_t batch = input_ids.size(0);
  const int64_t seq = input_ids.size(1);
  KVCache* cache = args.cache;
  if (cache != nullptr && (cache->batch_size() != batch || cache->length + seq > cache->capacity()))
    throw Error("CausalLM: KV cache of batch " + std::to_string(cache->batch_size()) + " and capacity " +
                std::to_string(cache->capacity()) + " cannot take " + std::to_string(seq) + " more slots for batch " +
                std::to_string(batch));
  if (cache != nullptr && cache->is_static() &&
      (seq != 1 || args.attention_mask.defined() || args.position_ids.defined()))
    throw Error("CausalLM: a static-mode KV cache takes one real token per row (no mask, no positions), got " +
                std::to_string(seq));
  const bool any_routing = args.routing.mode != RoutingMode::native && config_.is_moe();
  if (args.routing.mode == RoutingMode::replay && config_.is_moe()) check_replay(args.routing, config_, batch, seq);

  // real: [B, S] bool
  auto real = args.attention_mask.defined() ? args.attention_mask.to(torch::kBool)
                                            : torch::ones({batch, seq}, input_ids.options().dtype(torch::kBool));
  auto positions = args.position_ids.defined() ? args.position_ids : default_positions(real, cache);
  auto mask = build_attention_mask(real, cache, config_.sliding_window);
  auto hidden = model->embed_tokens->forward(input_ids);  // [B, S, hidden] model dtype
  // Scaled-dot-product attention turns a boolean mask into an additive one
  // (0 where allowed, -inf elsewhere, in the query's dtype) at every call:
  // three kernels per layer on a GPU. The same conversion once per forward.
#if QERL_CUDA
  if (mask.is_cuda() && torch::isFloatingType(hidden.scalar_type()) && kernels::cuda::fused_decode_enabled())
    mask = torch::zeros(mask.sizes(), hidden.options())
               .masked_fill_(mask.logical_not(), -std::numeric_limits<double>::infinity());
#endif
  auto rope = rotary_.tables(positions, hidden.scalar_type());

  const bool checkpointed = activation_checkpointing_ && cache == nullptr && torch::GradMode::is_enabled();
  std::vector<torch::Tensor> used, native;  // per MoE layer [T, K] int64
  int64_t moe_index = 0;
  for (auto& layer : model->layer_list) {
    LayerRoute route;
    if (layer->is_moe() && args.routing.mode == RoutingMode::replay) {
      route.mode = RoutingMode::replay;
      route.replay_indices = args.routing.indices.select(2, moe_index).reshape({batch * seq, -1});
      if (args.routing.replay_mask.defined())
        route.replay_mask = args.routing.replay_mask.reshape({-1}).to(torch::kBool);
    }
    auto out = checkpointed ? checkpointed_layer_forward(*layer, hidden, rope, mask, route)
                            : layer->forward(hidden, rope, mask, cache, route);
    hidden = out.hidden;
    if (layer->is_moe()) {
      ++moe_index;
      if (any_routing) {
        used.push_back(out.moe.indices);
        if (out.moe.native_indices.defined()) native.push_back(out.moe.native_indices);
      }
    }
  }
  if (cache != nullptr && cache->is_static()) {
    // In place, so that a replayed step advances the same tensors.
    cache->slot.add_(1);
    cache->next_position.add_(1);
  } else if (cache != nullptr) {
    cache->length += seq;
    if (args.position_ids.defined())
      cache->next_position = args.position_ids.select(1, seq - 1) + 1;
    else
      cache->next_position = cache->next_position + real.to(torch::kLong).sum(1);
  }

  hidden = model->norm->forward(hidden);
  if (args.logits_to_keep > 0 && args.logits_to_keep < seq)
    hidden = hidden.narrow(1, seq - args.logits_to_keep, args.logits_to_keep);
  ForwardOutput result;
  result.logits =
      lm_head ? lm_head->forward(hidden) : torch::nn::functional::linear(hidden, model->embed_tokens->weight);
  auto to_record = [&](const std::vector<torch::Tensor>& per_layer) {
    // [T, L_moe, K] -> [B, S, L_moe, K] int16
    return torch::stack(per_layer, 1).view({batch, seq, static_cast<int64_t>(per_layer.size()), -1}).to(torch::kShort);
  };
  if (!used.empty()) result.routing.indices = to_record(used);
  if (!native.empty()) result.routing.native_indices = to_record(native);
  return result;
}

}  // namespace qerl::models
