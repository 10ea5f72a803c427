// ModelConfig: the architecture facts qerl needs from an HF config.json, for
// qwen2_moe, qwen3_moe, mixtral, qwen2, qwen3 and llama. Defaults follow the
// transformers 5.23 config classes (e.g. qwen3's head_dim 128, mixtral's
// rope_theta 1e6); anything qerl cannot run exactly (rope scaling, sliding
// windows on Qwen, non-SiLU activations) is rejected with a qerl::Error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

namespace qerl::models {

enum class Architecture { qwen2_moe, qwen3_moe, mixtral, qwen2, qwen3, llama };

struct ModelConfig {
  Architecture architecture = Architecture::llama;
  std::string model_type;  // as in config.json

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;  // dense MLP width (mixtral: expert width)
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  double initializer_range = 0.02;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;

  bool qkv_bias = false;                  // bias on q/k/v projections
  bool o_bias = false;                    // bias on o_proj
  bool mlp_bias = false;                  // bias on dense gate/up/down (llama mlp_bias)
  bool qk_norm = false;                   // per-head RMSNorm on q and k (qwen3, qwen3_moe)
  std::optional<int64_t> sliding_window;  // mixtral only; none = full causal

  // Mixture of experts; num_experts == 0 for dense models.
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;            // expert width
  int64_t shared_expert_intermediate_size = 0;  // qwen2_moe; 0 = none
  bool norm_topk_prob = false;                  // renormalize the top-k weights
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  // Mixtral multiplies expert outputs by float32 weights; Qwen casts the
  // weights to the model dtype first (matters in bf16/fp16 only).
  bool float32_mixing_weights = false;

  c10::ScalarType dtype = c10::ScalarType::Float;  // "dtype" / "torch_dtype"
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> pad_token_id;
  std::vector<int64_t> eos_token_ids;

  nlohmann::json raw;  // config.json as read (written back on save)

  bool is_moe() const { return num_experts > 0; }
  bool is_moe_layer(int64_t layer) const;
  int64_t num_moe_layers() const;
  // Name of the MoE/MLP child inside a decoder layer: "block_sparse_moe"
  // for mixtral, "mlp" otherwise.
  std::string mlp_module_name() const;
};

// Throws qerl::Error naming the key on a missing/ill-typed field, an unknown
// model_type or an unsupported feature, and naming key and value on a size
// that is not positive, above qerl's sanity limit or not divisible where the
// architecture needs it ("config.json: \"num_attention_heads\" = 0: expected
// a positive integer"). Memory is checked later, by CausalLM's constructor.
ModelConfig parse_model_config(const nlohmann::json& config);
ModelConfig load_model_config(const std::string& config_json_path);

// EOS ids of config.json plus those of <dir>/generation_config.json when it
// exists (what HF generate stops on; Qwen instruct models list <|im_end|> there).
std::vector<int64_t> generation_eos_token_ids(const std::string& dir, const ModelConfig& config);

const char* architecture_name(Architecture architecture);
// "float32" / "bfloat16" / "float16" <-> ScalarType; throws on others.
c10::ScalarType parse_dtype(const std::string& name);
std::string dtype_name(c10::ScalarType dtype);

}  // namespace qerl::models
