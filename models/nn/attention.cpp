// Grouped-query attention forward; see attention.hpp.
#include "models/nn/attention.hpp"

#include <cmath>

#include <ATen/Context.h>
#include <torch/types.h>
#if QERL_CUDA
#include "kernels/cuda/decoder_ops_torch.hpp"
#endif

namespace qerl::models {

AttentionImpl::AttentionImpl(const ModelConfig& config, int64_t layer_index)
    : layer_index_(layer_index),
      num_heads_(config.num_attention_heads),
      num_kv_heads_(config.num_key_value_heads),
      head_dim_(config.head_dim) {
  const int64_t hidden = config.hidden_size;
  q_proj =
      register_module("q_proj", Linear(hidden, num_heads_ * head_dim_, config.qkv_bias));
  k_proj = register_module("k_proj",
                           Linear(hidden, num_kv_heads_ * head_dim_, config.qkv_bias));
  v_proj = register_module("v_proj",
                           Linear(hidden, num_kv_heads_ * head_dim_, config.qkv_bias));
  o_proj =
      register_module("o_proj", Linear(num_heads_ * head_dim_, hidden, config.o_bias));
  if (config.qk_norm) {
    q_norm = register_module("q_norm", RMSNorm(head_dim_, config.rms_norm_eps));
    k_norm = register_module("k_norm", RMSNorm(head_dim_, config.rms_norm_eps));
  }
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& hidden, const RopeTables& rope, const torch::Tensor& mask,
                                     KVCache* cache) {
  const int64_t batch = hidden.size(0);
  const int64_t seq = hidden.size(1);
  // [B, S, heads, D]; qwen3 normalizes each head before RoPE.
  auto q = q_proj->forward(hidden).view({batch, seq, num_heads_, head_dim_});
  auto k = k_proj->forward(hidden).view({batch, seq, num_kv_heads_, head_dim_});
  auto v = v_proj->forward(hidden).view({batch, seq, num_kv_heads_, head_dim_});
  if (q_norm) {
    q = q_norm->forward(q);
    k = k_norm->forward(k);
  }
  // [B, heads, S, D]; without gradients on the GPU one fused kernel each,
  // and a decode step's key and value go into a static cache in one more.
  bool fused = false, in_cache = false;
#if QERL_CUDA
  fused = q.is_cuda() && q.scalar_type() == torch::kBFloat16 && rope.cos.scalar_type() == torch::kBFloat16 &&
          !torch::GradMode::is_enabled();
  if (fused && seq == 1 && cache != nullptr && cache->is_static() && kernels::cuda::fused_decode_enabled() &&
      cache->keys[layer_index_].scalar_type() == torch::kBFloat16 && cache->keys[layer_index_].is_contiguous() &&
      cache->values[layer_index_].scalar_type() == torch::kBFloat16 && cache->values[layer_index_].is_contiguous()) {
    q = kernels::cuda::rotary(q, rope.cos, rope.sin);
    kernels::cuda::rotary_into_cache(k, v, rope.cos, rope.sin, cache->slot, cache->keys[layer_index_],
                                     cache->values[layer_index_]);
    k = cache->keys[layer_index_];
    v = cache->values[layer_index_];
    in_cache = true;
  } else if (fused) {
    q = kernels::cuda::rotary(q, rope.cos, rope.sin);
    k = kernels::cuda::rotary(k, rope.cos, rope.sin);
  }
#endif
  if (!fused) {
    q = apply_rotary(q.transpose(1, 2), rope);
    k = apply_rotary(k.transpose(1, 2), rope);
  }
  if (!in_cache) v = v.transpose(1, 2);
  if (!in_cache && cache != nullptr && cache->is_static()) {
    // One new slot per row at the device-side index; attention covers the
    // whole capacity under the mask.
    cache->keys[layer_index_].index_copy_(2, cache->slot, k);
    cache->values[layer_index_].index_copy_(2, cache->slot, v);
    k = cache->keys[layer_index_];
    v = cache->values[layer_index_];
  } else if (!in_cache && cache != nullptr) {
    const int64_t start = cache->length;
    cache->keys[layer_index_].narrow(2, start, seq).copy_(k);
    cache->values[layer_index_].narrow(2, start, seq).copy_(v);
    k = cache->keys[layer_index_].narrow(2, 0, start + seq);
    v = cache->values[layer_index_].narrow(2, 0, start + seq);
  }
  bool grouped_query = num_kv_heads_ != num_heads_;
  if (q.is_cuda()) {
    // LibTorch 2.11 sends masked grouped-query attention on sm_90 to cuDNN,
    // which builds an execution plan for each new shape: 12-16 ms of host
    // time per call, measured (QERL_TORCH_PROFILE) in the RL loop, whose
    // lengths change every step. So cuDNN's attention is off, and K/V are
    // expanded to every head, which lets the memory-efficient kernel (it
    // takes masks, not grouped queries) run instead of the unfused one.
    static const bool cudnn_off = [] {
      at::globalContext().setSDPUseCuDNN(false);
      return true;
    }();
    (void)cudnn_off;
    if (grouped_query && mask.defined()) {
      const auto every_head = [&](const torch::Tensor& t) {  // [B, kv, S, D] -> [B, heads, S, D]
        return t.unsqueeze(2)
            .expand({t.size(0), num_kv_heads_, num_heads_ / num_kv_heads_, t.size(2), t.size(3)})
            .reshape({t.size(0), num_heads_, t.size(2), t.size(3)});
      };
      k = every_head(k);
      v = every_head(v);
      grouped_query = false;
    }
  }
  // An additive mask (made once per forward, causal_lm.cpp) in q's dtype.
  const torch::Tensor& attn_mask =
      mask.defined() && mask.is_floating_point() && mask.scalar_type() != q.scalar_type() ? mask.to(q.scalar_type())
                                                                                          : mask;
  auto out = at::scaled_dot_product_attention(q, k, v, attn_mask, /*dropout_p=*/0.0, /*is_causal=*/false,
                                              /*scale=*/std::pow(static_cast<double>(head_dim_), -0.5),
                                              /*enable_gqa=*/grouped_query);
  // [B, S, heads * D]
  out = out.transpose(1, 2).reshape({batch, seq, num_heads_ * head_dim_});
  return o_proj->forward(out);
}

}  // namespace qerl::models
