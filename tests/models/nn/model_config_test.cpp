// config.json parsing: per-architecture defaults and flags as transformers
// 5.23 reads them, both rope_theta locations, one clear qerl::Error for what
// qerl cannot run or for a bad size (naming config.json, the key and the
// value), and the memory check against parameter counts of real modules.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/error.hpp"
#include "models/nn/model_size.hpp"
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
  CHECK(error_of(c).find("\"num_key_value_heads\" = 3: expected a divisor of \"num_attention_heads\" = 4") !=
        std::string::npos);
  c = tiny_config("qwen3");
  c["vocab_size"] = "many";
  CHECK(error_of(c).find("\"vocab_size\" = \"many\": expected an integer") != std::string::npos);
}

namespace {

struct BadConfig {
  const char* type;   // tiny_config's model_type to start from
  const char* key;    // the key set
  json value;         // its value
  const char* erase;  // a key removed first, or nullptr
  std::string message;
};

}  // namespace

TEST_CASE("each bad size in config.json is one line naming config.json, the key and the value") {
  const std::vector<BadConfig> table{
      {"llama", "vocab_size", 0, nullptr, "config.json: \"vocab_size\" = 0: expected a positive integer"},
      {"llama", "vocab_size", 1000000000000LL, nullptr,
       "config.json: \"vocab_size\" = 1000000000000: exceeds qerl's sanity limit 16777216"},
      {"llama", "vocab_size", 1e12, nullptr, "config.json: \"vocab_size\" = 1000000000000.0: expected an integer"},
      {"llama", "vocab_size", 18446744073709551615ULL, nullptr,
       "config.json: \"vocab_size\" = 18446744073709551615: expected an integer that fits int64"},
      {"llama", "hidden_size", -32, nullptr, "config.json: \"hidden_size\" = -32: expected a positive integer"},
      {"llama", "hidden_size", int64_t{1} << 21, nullptr,
       "config.json: \"hidden_size\" = 2097152: exceeds qerl's sanity limit"},
      {"llama", "intermediate_size", 0, nullptr, "config.json: \"intermediate_size\" = 0: expected a positive integer"},
      {"qwen2", "num_hidden_layers", -1, nullptr,
       "config.json: \"num_hidden_layers\" = -1: expected a positive integer"},
      {"qwen2", "num_hidden_layers", 100000, nullptr,
       "config.json: \"num_hidden_layers\" = 100000: exceeds qerl's sanity limit"},
      {"llama", "num_attention_heads", 0, nullptr,
       "config.json: \"num_attention_heads\" = 0: expected a positive integer"},
      {"llama", "num_key_value_heads", 0, nullptr,
       "config.json: \"num_key_value_heads\" = 0: expected a positive integer"},
      {"llama", "num_key_value_heads", 8, nullptr,
       "config.json: \"num_key_value_heads\" = 8: expected a divisor of \"num_attention_heads\" = 4"},
      // hidden 32 with 6 heads and no head_dim: 32 / 6 is not integral.
      {"llama", "num_attention_heads", 6, nullptr,
       "config.json: hidden_size 32 is not divisible by num_attention_heads 6 (and config.json has no \"head_dim\")"},
      {"qwen2", "hidden_size", 36, nullptr,
       "config.json: hidden_size 36 / num_attention_heads 4 = 9 is odd, rotary embeddings need an even head "
       "dimension (and config.json has no \"head_dim\")"},
      {"qwen3", "head_dim", 0, nullptr, "config.json: \"head_dim\" = 0: expected a positive integer"},
      {"qwen3", "head_dim", 15, nullptr, "config.json: \"head_dim\" = 15: expected an even integer"},
      {"llama", "max_position_embeddings", 0, nullptr,
       "config.json: \"max_position_embeddings\" = 0: expected a positive integer"},
      {"llama", "max_position_embeddings", int64_t{1} << 40, nullptr,
       "config.json: \"max_position_embeddings\" = 1099511627776: exceeds qerl's sanity limit"},
      {"mixtral", "sliding_window", 0, nullptr, "config.json: \"sliding_window\" = 0: expected a positive integer"},
      {"llama", "rms_norm_eps", 0.0, nullptr, "config.json: \"rms_norm_eps\" = 0.0: expected a finite positive number"},
      {"llama", "rope_theta", -1.0, nullptr, "config.json: \"rope_theta\" = -1.0: expected a finite positive number"},
      {"llama", "initializer_range", -0.5, nullptr,
       "config.json: \"initializer_range\" = -0.5: expected a finite non-negative number"},
      {"qwen2_moe", "num_experts", 0, nullptr, "config.json: \"num_experts\" = 0: expected a positive integer"},
      {"qwen2_moe", "num_experts", 40000, nullptr,
       "config.json: \"num_experts\" = 40000: exceeds qerl's sanity limit 32767"},
      {"mixtral", "num_local_experts", -2, nullptr,
       "config.json: \"num_local_experts\" = -2: expected a positive integer"},
      {"mixtral", "num_experts_per_tok", 7, nullptr,
       "config.json: \"num_experts_per_tok\" = 7: exceeds num_local_experts 6"},
      {"qwen3_moe", "num_experts_per_tok", 200, "num_experts",
       "config.json: \"num_experts_per_tok\" = 200: exceeds num_experts 128 (its default)"},
      {"qwen3_moe", "num_experts_per_tok", 0, nullptr,
       "config.json: \"num_experts_per_tok\" = 0: expected a positive integer"},
      {"qwen3_moe", "moe_intermediate_size", 0, nullptr,
       "config.json: \"moe_intermediate_size\" = 0: expected a positive integer"},
      {"qwen2_moe", "shared_expert_intermediate_size", -1, nullptr,
       "config.json: \"shared_expert_intermediate_size\" = -1: expected a non-negative integer"},
      {"qwen3_moe", "decoder_sparse_step", 0, nullptr,
       "config.json: \"decoder_sparse_step\" = 0: expected a positive integer"},
      {"qwen2_moe", "mlp_only_layers", json::array({1, 3}), nullptr,
       "config.json: \"mlp_only_layers\" = [1,3]: expected layer indices in [0, num_hidden_layers 3)"},
  };
  for (const BadConfig& bad : table) {
    CAPTURE(std::string(bad.type));
    CAPTURE(std::string(bad.key));
    CAPTURE(bad.value.dump());
    json c = tiny_config(bad.type);
    REQUIRE(error_of(c).empty());  // the starting point is valid: the edit alone fails
    if (bad.erase != nullptr) c.erase(bad.erase);
    c[bad.key] = bad.value;
    const std::string error = error_of(c);
    CHECK(error.find(bad.message) == 0);
    CHECK(error.find('\n') == std::string::npos);
    CHECK(error.find(bad.key) != std::string::npos);
  }
}


TEST_CASE("valid configs at the limits still load; the file path replaces config.json in messages") {
  for (const auto& type : all_types()) {
    CAPTURE(type);
    CHECK(error_of(tiny_config(type)).empty());
  }
  auto c = tiny_config("qwen2_moe");
  c["max_position_embeddings"] = 32768;
  c["shared_expert_intermediate_size"] = 0;  // 0 = no shared expert
  c["num_experts_per_tok"] = 6;              // all of them
  c["num_key_value_heads"] = 4;              // = heads: plain multi-head attention
  c["decoder_sparse_step"] = 3;
  c["initializer_range"] = 0.0;
  const ModelConfig parsed = parse_model_config(c);
  CHECK(parsed.max_position_embeddings == 32768);
  CHECK(parsed.shared_expert_intermediate_size == 0);
  CHECK(parsed.num_moe_layers() == 1);  // layer 2 only (layer 1 is mlp_only)

  const auto dir = std::filesystem::temp_directory_path() / ("qerl_config_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "config.json";
  c = tiny_config("llama");
  c["num_attention_heads"] = 0;
  std::ofstream(file) << c.dump();
  CHECK_THROWS_WITH_AS(load_model_config(file.string()),
                       (file.string() + ": \"num_attention_heads\" = 0: expected a positive integer").c_str(),
                       qerl::Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("parameter_count equals the parameters a CausalLM registers, for every architecture and flag") {
  for (const json& c : config_variants()) {
    CAPTURE(c.dump());
    const ModelConfig config = parse_model_config(c);
    CausalLM lm(config);
    const double expected = static_cast<double>(count_parameters(*lm).total);
    CHECK(parameter_count(config) == expected);
    // The check's threshold is exactly the float32 bytes of those parameters.
    CHECK_NOTHROW(require_memory_for(config, 4 * expected));
    CHECK_THROWS_AS(require_memory_for(config, 4 * expected - 1), qerl::Error);
  }
}

TEST_CASE("a model larger than the memory available fails before any allocation, naming config.json and sizes") {
  REQUIRE(available_memory_bytes().has_value());
  CHECK(*available_memory_bytes() > 0);
  // Every size within its limit, but ~2.2e14 parameters (797 TiB in float32).
  auto c = tiny_config("llama");
  c["hidden_size"] = 65536;
  c["intermediate_size"] = 1 << 20;
  c["num_hidden_layers"] = 1000;
  const ModelConfig config = parse_model_config(c);
  try {
    CausalLM lm(config);
    FAIL("no error");
  } catch (const qerl::Error& e) {
    const std::string text = e.what();
    CHECK(text.find("config.json: the model has 2.19e+14 parameters (vocab_size 97, hidden_size 65536, "
                    "intermediate_size 1048576, num_hidden_layers 1000): building it in float32 needs 797 TiB, "
                    "but only ") == 0);
    CHECK(text.find(" of memory is available") != std::string::npos);
    CHECK(text.find('\n') == std::string::npos);
  }
}
