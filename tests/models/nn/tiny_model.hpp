// Tiny random models of each architecture for the C++ model tests (shared
// with tests/models/generate): hidden 32, 3 layers, 6 experts top-2 (one
// dense layer among the MoE ones for qwen2_moe), GQA, vocab 97. Weights use
// a large init std so that logits and routes are far from ties.
#pragma once

#include <nlohmann/json.hpp>

#include "models/nn/causal_lm.hpp"
#include "models/nn/weights.hpp"

namespace qerl::models::testing {

inline nlohmann::json tiny_config(const std::string& model_type) {
  nlohmann::json c{{"model_type", model_type}, {"vocab_size", 97},         {"hidden_size", 32},
                   {"intermediate_size", 48},  {"num_hidden_layers", 3},   {"num_attention_heads", 4},
                   {"num_key_value_heads", 2}, {"initializer_range", 0.2}, {"rms_norm_eps", 1e-6},
                   {"eos_token_id", 2},        {"pad_token_id", 0}};
  if (model_type == "qwen2_moe" || model_type == "qwen3_moe") {
    c["num_experts"] = 6;
    c["num_experts_per_tok"] = 2;
    c["moe_intermediate_size"] = 16;
    c["norm_topk_prob"] = model_type == "qwen3_moe";
  }
  if (model_type == "qwen2_moe") {
    c["shared_expert_intermediate_size"] = 24;
    c["mlp_only_layers"] = {1};
  }
  if (model_type == "mixtral") {
    c["num_local_experts"] = 6;
    c["num_experts_per_tok"] = 2;
  }
  if (model_type == "qwen3") c["head_dim"] = 16;
  return c;
}

inline CausalLM tiny_model(const std::string& model_type, uint64_t seed = 1, torch::ScalarType dtype = torch::kFloat) {
  CausalLM lm(parse_model_config(tiny_config(model_type)));
  init_weights(*lm, seed);
  lm->to(dtype);
  lm->eval();
  return lm;
}

inline const std::vector<std::string>& moe_types() {
  static const std::vector<std::string> types{"qwen2_moe", "qwen3_moe", "mixtral"};
  return types;
}

inline const std::vector<std::string>& all_types() {
  static const std::vector<std::string> types{"qwen2_moe", "qwen3_moe", "mixtral", "qwen2", "qwen3", "llama"};
  return types;
}

// Every architecture's tiny config plus the flags that change which modules
// and parameters exist: tied embeddings, attention / MLP biases, no shared
// expert, sparse layers only every second step.
inline std::vector<nlohmann::json> config_variants() {
  std::vector<nlohmann::json> configs;
  for (const auto& type : all_types()) configs.push_back(tiny_config(type));
  auto tied = tiny_config("qwen3");
  tied["tie_word_embeddings"] = true;
  configs.push_back(tied);
  auto biased = tiny_config("llama");
  biased["attention_bias"] = true;
  biased["mlp_bias"] = true;
  configs.push_back(biased);
  auto no_shared = tiny_config("qwen2_moe");
  no_shared["shared_expert_intermediate_size"] = 0;
  configs.push_back(no_shared);
  auto stepped = tiny_config("qwen3_moe");
  stepped["decoder_sparse_step"] = 2;
  configs.push_back(stepped);
  return configs;
}

}  // namespace qerl::models::testing
