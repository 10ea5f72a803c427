// Weight layouts and init: fused expert tensors split into the per-expert
// HF names, loading rejects missing/unexpected/mis-shaped tensors, export ->
// load round-trips, init is deterministic per seed and HF-shaped.
#include <doctest/doctest.h>

#include <torch/types.h>
#include <torch/utils.h>

#include "common/error.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl::models;
using namespace qerl::models::testing;

namespace {

// Per-expert tensors of one MoE layer -> the fused 5.x in-memory layout.
TensorMap fuse_layer(TensorMap tensors, const std::string& prefix, const SwiGLUNames& names, int64_t experts,
                     const std::string& fused_prefix) {
  std::vector<torch::Tensor> gate_up, down;
  for (int64_t e = 0; e < experts; ++e) {
    const std::string p = prefix + "experts." + std::to_string(e) + ".";
    gate_up.push_back(torch::cat({tensors.at(p + names.gate + ".weight"), tensors.at(p + names.up + ".weight")}, 0));
    down.push_back(tensors.at(p + names.down + ".weight"));
    for (const auto& n : {names.gate, names.up, names.down}) tensors.erase(p + n + ".weight");
  }
  tensors[fused_prefix + "experts.gate_up_proj"] = torch::stack(gate_up);
  tensors[fused_prefix + "experts.down_proj"] = torch::stack(down);
  return tensors;
}

}  // namespace

TEST_CASE("parameter names are the HF checkpoint names") {
  auto names = export_weights(*tiny_model("qwen2_moe"));
  CHECK(names.count("model.layers.0.mlp.experts.3.gate_proj.weight"));
  CHECK(names.count("model.layers.0.mlp.shared_expert_gate.weight"));
  CHECK(names.count("model.layers.0.mlp.shared_expert.down_proj.weight"));
  CHECK(names.count("model.layers.0.mlp.gate.weight"));
  CHECK(names.count("model.layers.1.mlp.up_proj.weight"));  // dense layer
  CHECK(names.count("model.layers.0.self_attn.q_proj.bias"));
  CHECK(names.count("lm_head.weight"));
  auto mixtral = export_weights(*tiny_model("mixtral"));
  CHECK(mixtral.count("model.layers.0.block_sparse_moe.experts.0.w1.weight"));
  CHECK(mixtral.count("model.layers.2.block_sparse_moe.gate.weight"));
  auto qwen3 = export_weights(*tiny_model("qwen3"));
  CHECK(qwen3.count("model.layers.0.self_attn.q_norm.weight"));
  CHECK(qwen3.at("model.layers.0.self_attn.q_proj.weight").sizes() == torch::IntArrayRef{64, 32});
}

TEST_CASE("fused expert tensors load as the per-expert layout") {
  for (const auto& type : moe_types()) {
    CAPTURE(type);
    auto lm = tiny_model(type, /*seed=*/2);
    const auto& config = lm->config();
    const auto names = config.architecture == Architecture::mixtral ? SwiGLUNames::mixtral() : SwiGLUNames{};
    auto tensors = export_weights(*lm);
    auto fused = tensors;
    for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
      if (!config.is_moe_layer(layer)) continue;
      const std::string prefix = "model.layers." + std::to_string(layer) + "." + config.mlp_module_name() + ".";
      // 5.x names mixtral's block "mlp" in memory.
      const std::string fused_prefix = "model.layers." + std::to_string(layer) + ".mlp.";
      fused = fuse_layer(fused, prefix, names, config.num_experts, fused_prefix);
      if (config.architecture == Architecture::mixtral) {
        fused[fused_prefix + "gate.weight"] = fused.at(prefix + "gate.weight");
        fused.erase(prefix + "gate.weight");
      }
    }
    CHECK(fused.size() < tensors.size());
    auto converted = to_qerl_layout(fused, config);
    REQUIRE(converted.size() == tensors.size());
    for (const auto& [name, t] : tensors) {
      CAPTURE(name);
      REQUIRE(converted.count(name));
      CHECK(torch::equal(converted.at(name), t));
    }
  }
}

TEST_CASE("load_weights round-trips and rejects bad checkpoints") {
  auto source = tiny_model("llama", /*seed=*/3);
  auto target = tiny_model("llama", /*seed=*/4);
  auto tensors = export_weights(*source);
  load_weights(*target, tensors);
  for (const auto& [name, t] : export_weights(*target)) CHECK(torch::equal(t, tensors.at(name)));

  auto missing = tensors;
  missing.erase("model.norm.weight");
  CHECK_THROWS_WITH_AS(load_weights(*target, missing), doctest::Contains("model.norm.weight"), qerl::Error);
  auto extra = tensors;
  extra["model.layers.9.mlp.up_proj.weight"] = torch::zeros({1});
  CHECK_THROWS_WITH_AS(load_weights(*target, extra), doctest::Contains("model.layers.9"), qerl::Error);
  auto misshaped = tensors;
  misshaped["model.norm.weight"] = torch::ones({31});
  CHECK_THROWS_WITH_AS(load_weights(*target, misshaped), doctest::Contains("shape"), qerl::Error);
}

TEST_CASE("init is deterministic per seed, HF-shaped, and tied models have no lm_head") {
  auto a = export_weights(*tiny_model("qwen2_moe", 5));
  auto b = export_weights(*tiny_model("qwen2_moe", 5));
  auto c = export_weights(*tiny_model("qwen2_moe", 6));
  for (const auto& [name, t] : a) CHECK(torch::equal(t, b.at(name)));
  CHECK(!torch::equal(a.at("model.embed_tokens.weight"), c.at("model.embed_tokens.weight")));
  CHECK(torch::equal(a.at("model.norm.weight"), torch::ones({32})));
  CHECK(torch::equal(a.at("model.layers.0.self_attn.q_proj.bias"), torch::zeros({32})));
  CHECK(a.at("model.embed_tokens.weight")[0].abs().sum().item<float>() == 0);  // pad row
  const double std = a.at("model.layers.0.mlp.experts.0.down_proj.weight").std().item<double>();
  CHECK(std == doctest::Approx(0.2).epsilon(0.15));

  auto tied_config = tiny_config("qwen3");
  tied_config["tie_word_embeddings"] = true;
  CausalLM tied(parse_model_config(tied_config));
  CHECK(export_weights(*tied).count("lm_head.weight") == 0);
  auto with_head = export_weights(*tied);
  with_head["lm_head.weight"] = torch::zeros({97, 32});
  CHECK(to_qerl_layout(with_head, tied->config()).count("lm_head.weight") == 0);
}

TEST_CASE("parameter counts: active counts top-k of the experts") {
  auto lm = tiny_model("mixtral");
  auto count = count_parameters(*lm);
  const int64_t per_expert = 3 * 32 * 48;
  CHECK(count.total - count.active == 3 /*layers*/ * (6 - 2) * per_expert);
}
