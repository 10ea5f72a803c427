// config.json parsing: per-architecture defaults and flags as transformers
// 5.23 reads them, both rope_theta locations, and one clear qerl::Error for
// what qerl cannot run.
#include <doctest/doctest.h>

#include "common/error.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl::models;
using namespace qerl::models::testing;
using nlohmann::json;

namespace {
std::string error_of(const json& config) {
  try {
    parse_model_config(config);
  } catch (const qerl::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("architecture flags follow the HF config classes") {
  auto qwen2 = parse_model_config(tiny_config("qwen2"));
  CHECK(qwen2.qkv_bias);
  CHECK(!qwen2.o_bias);
  CHECK(qwen2.head_dim == 8);
  CHECK(qwen2.rope_theta == 10000.0);
  auto qwen3 = tiny_config("qwen3");
  qwen3.erase("head_dim");
  CHECK(parse_model_config(qwen3).head_dim == 128);  // Qwen3Config's default
  CHECK(parse_model_config(qwen3).qk_norm);
  auto mixtral = parse_model_config(tiny_config("mixtral"));
  CHECK(mixtral.norm_topk_prob);
  CHECK(mixtral.float32_mixing_weights);
  CHECK(mixtral.rope_theta == 1e6);
  CHECK(mixtral.moe_intermediate_size == mixtral.intermediate_size);
  CHECK(mixtral.mlp_module_name() == "block_sparse_moe");
  auto qwen2_moe = parse_model_config(tiny_config("qwen2_moe"));
  CHECK(qwen2_moe.is_moe_layer(0));
  CHECK(!qwen2_moe.is_moe_layer(1));  // mlp_only_layers
  CHECK(qwen2_moe.num_moe_layers() == 2);
  auto sparse_step = tiny_config("qwen3_moe");
  sparse_step["decoder_sparse_step"] = 2;
  auto stepped = parse_model_config(sparse_step);
  CHECK(!stepped.is_moe_layer(0));
  CHECK(stepped.is_moe_layer(1));
  CHECK(!stepped.is_moe_layer(2));
}

TEST_CASE("rope_theta from rope_parameters, rope_scaling or the top level") {
  auto c = tiny_config("llama");
  c["rope_theta"] = 500000.0;
  CHECK(parse_model_config(c).rope_theta == 500000.0);
  c["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 123.0}};
  CHECK(parse_model_config(c).rope_theta == 123.0);
  c["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  CHECK(error_of(c).find("rope_type \"yarn\" is not supported") != std::string::npos);
  c.erase("rope_parameters");
  c["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  CHECK(error_of(c).find("\"linear\"") != std::string::npos);
}

TEST_CASE("dtype, eos list and defaults") {
  auto c = tiny_config("qwen3_moe");
  c["torch_dtype"] = "bfloat16";
  c["eos_token_id"] = {2, 5};
  auto parsed = parse_model_config(c);
  CHECK((parsed.dtype == c10::ScalarType::BFloat16));
  CHECK((parsed.eos_token_ids == std::vector<int64_t>{2, 5}));
  c["dtype"] = "float16";  // the 5.x key wins
  CHECK((parse_model_config(c).dtype == c10::ScalarType::Half));
}

TEST_CASE("unsupported or malformed configs fail with one clear error") {
  auto c = tiny_config("llama");
  c["model_type"] = "gpt2";
  CHECK(error_of(c).find("unsupported model_type \"gpt2\"") != std::string::npos);
  c = tiny_config("llama");
  c.erase("hidden_size");
  CHECK(error_of(c).find("missing integer \"hidden_size\"") != std::string::npos);
  c = tiny_config("llama");
  c["hidden_act"] = "gelu";
  CHECK(error_of(c).find("hidden_act") != std::string::npos);
  c = tiny_config("qwen2");
  c["use_sliding_window"] = true;
  CHECK(error_of(c).find("use_sliding_window") != std::string::npos);
  c = tiny_config("qwen2_moe");
  c["num_experts_per_tok"] = 7;
  CHECK(error_of(c).find("num_experts_per_tok") != std::string::npos);
  c = tiny_config("qwen3");
  c["num_key_value_heads"] = 3;
  CHECK(error_of(c).find("multiple of num_key_value_heads") != std::string::npos);
  c = tiny_config("qwen3");
  c["vocab_size"] = "many";
  CHECK(error_of(c).find("\"vocab_size\" must be an integer") != std::string::npos);
}
