// A packed base that keeps only codes (Residency::codes_only): every packed
// Linear computes y = x · dequant(W)^T from codes on the model's device and
// holds no dense weight, with logits bit-identical to a base that keeps its
// dense weights; full updates are packed on arrival (load_dense) exactly as
// repack() packs the same weights in place; load/export skip the freed
// weights; and the shipped tiny MoE in NVFP4 W4A16 holds at most 0.35x the
// bytes of its bf16 weights.
#include <doctest/doctest.h>

#include <filesystem>

#include "models/quant/compressed_tensors.hpp"
#include "models/quant/quantize_model.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl;
using namespace qerl::models;

namespace {

torch::Tensor resident_logits(CausalLMImpl& lm, const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  ForwardArgs args;
  args.input_ids = ids;
  return lm.forward(args).logits;
}

QuantSpec resident_spec(QuantScheme scheme) {
  QuantSpec spec;
  spec.scheme = scheme;
  return spec;
}

}  // namespace

TEST_CASE("codes_only: the same logits as a dense-keeping base, and no dense weight left") {
  for (auto scheme : {QuantScheme::nvfp4, QuantScheme::mxfp4}) {
    for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
      CAPTURE(quant_scheme_name(scheme));
      auto keep = testing::tiny_model("qwen3_moe", /*seed=*/21, dtype);
      auto lean = testing::tiny_model("qwen3_moe", /*seed=*/21, dtype);
      PackedBase kept(*keep, resident_spec(scheme), Residency::keep_dense);
      PackedBase freed(*lean, resident_spec(scheme), Residency::codes_only);
      CHECK_FALSE(kept.dense_released());
      CHECK(freed.dense_released());
      torch::manual_seed(5);
      const auto ids = torch::randint(3, 97, {3, 11}, torch::kLong);
      CHECK(torch::equal(resident_logits(*lean, ids), resident_logits(*keep, ids)));
      for (const auto& t : freed.targets()) {
        REQUIRE(t.linear->weight.numel() == 0);
        REQUIRE(t.linear->codes() != nullptr);
      }
      CHECK(freed.sqnr_db() == kept.sqnr_db());
      const ResidentWeights before = resident_weights(*keep), after = resident_weights(*lean);
      CHECK(after.bf16_bytes == before.bf16_bytes);  // the same weights, counted by shape
      CHECK(after.code_bytes == freed.code_bytes());
      CHECK(after.bytes() < before.bytes());
      // export skips the freed weights; loading one is refused, naming it.
      const TensorMap exported = export_weights(*lean);
      CHECK(exported.count("model.layers.0.self_attn.q_proj.weight") == 0);
      CHECK(exported.count("model.layers.0.input_layernorm.weight") == 1);
      CHECK_NOTHROW(load_weights(*lean, exported));
      TensorMap with_freed = exported;
      with_freed["model.layers.0.self_attn.q_proj.weight"] = torch::zeros({32, 32});
      CHECK_THROWS_WITH(load_weights(*lean, with_freed),
                        doctest::Contains("model.layers.0.self_attn.q_proj.weight: the layer computes with 4-bit codes"));
    }
  }
}

TEST_CASE("codes_only: a full update packed on arrival equals repacking the same weights in place") {
  for (auto scheme : {QuantScheme::nvfp4, QuantScheme::mxfp4}) {
    CAPTURE(quant_scheme_name(scheme));
    auto next = testing::tiny_model("qwen3_moe", /*seed=*/33, torch::kBFloat16);  // the "learner's" new weights
    const TensorMap update = export_weights(*next);
    auto lean = testing::tiny_model("qwen3_moe", /*seed=*/31, torch::kBFloat16);
    auto keep = testing::tiny_model("qwen3_moe", /*seed=*/31, torch::kBFloat16);
    PackedBase freed(*lean, resident_spec(scheme), Residency::codes_only);
    PackedBase kept(*keep, resident_spec(scheme), Residency::keep_dense);
    torch::manual_seed(6);
    const auto ids = torch::randint(3, 97, {2, 9}, torch::kLong);
    const torch::Tensor old_logits = resident_logits(*lean, ids);

    freed.load_dense(update);
    TensorMap rest = update;
    for (const auto& t : freed.targets()) rest.erase(t.name + ".weight");
    load_weights(*lean, rest);
    load_weights(*keep, update);
    kept.repack();
    const torch::Tensor new_logits = resident_logits(*lean, ids);
    CHECK(torch::equal(new_logits, resident_logits(*keep, ids)));
    CHECK_FALSE(torch::equal(new_logits, old_logits));
    const TensorMap a = freed.packed_tensors(), b = kept.packed_tensors();
    REQUIRE(a.size() == b.size());
    for (const auto& [name, t] : a) CHECK(torch::equal(t, b.at(name)));
    CHECK(freed.sqnr_db().has_value());
    CHECK(*freed.sqnr_db() == doctest::Approx(*kept.sqnr_db()));
    TensorMap missing = update;
    missing.erase(freed.targets().front().name + ".weight");
    CHECK_THROWS_WITH(freed.load_dense(missing), doctest::Contains("is missing"));
  }
}

TEST_CASE("the shipped tiny MoE in NVFP4 W4A16 holds <= 0.35x the bytes of its bf16 weights") {
  const std::filesystem::path dir = std::filesystem::path(QERL_SOURCE_DIR) / "assets" / "tiny-moe";
  LoadOptions options;
  options.dtype = torch::kBFloat16;
  LoadedModel policy = load_model_folder(dir, options);
  QuantSpec spec = resident_spec(QuantScheme::nvfp4);
  spec.ignore = {"lm_head", "re:.*mlp\\.gate$", "re:.*shared_expert_gate$"};  // pipelines/r3_aqn_nvfp4.toml's
  const ResidentWeights dense = resident_weights(*policy.lm);
  CHECK(dense.bytes() == dense.bf16_bytes);
  PackedBase base(*policy.lm, spec, Residency::codes_only);
  const ResidentWeights packed = resident_weights(*policy.lm);
  MESSAGE("tiny-moe NVFP4 W4A16 resident: " << packed.describe());
  CHECK(packed.bf16_bytes == dense.bf16_bytes);
  CHECK(packed.ratio() <= 0.35);
  CHECK(packed.ratio() > 0.25);  // codes are 4.5 bits per weight: not less than that
}
