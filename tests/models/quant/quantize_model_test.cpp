// Quantizing a model in place, on tiny random MoEs with fresh seeded
// weights: which Linears are planned (ignores, group-size misfits) and how
// they fuse; the packed base's weights equal kernels' fake-quantize under
// the group's shared (minimum) global scale, and ignored layers stay exact;
// QAT computes exactly what the packed base computes, with the gradient of
// the fake-quantized weight passed straight to W; W4A4 quantizes a layer's
// input (y = W_q Q(x)), not its output.
#include <doctest/doctest.h>

#include <set>

#include "kernels/quantize_tensor.hpp"
#include "models/quant/quantize_model.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl;
using namespace qerl::models;

namespace {

QuantSpec nvfp4_spec() {
  QuantSpec spec;
  spec.scheme = QuantScheme::nvfp4;
  return spec;
}

torch::Tensor logits_of(CausalLMImpl& lm, const torch::Tensor& ids) {
  ForwardArgs args;
  args.input_ids = ids;
  return lm.forward(args).logits;
}

}  // namespace

TEST_CASE("plan: every Linear but the ignored ones; q/k/v and each expert's gate/up fuse") {
  auto lm = testing::tiny_model("qwen3_moe", /*seed=*/4);
  QuantSummary summary;
  auto spec = nvfp4_spec();
  spec.ignore.push_back("re:.*never_there$");
  const auto targets = plan_quantization(*lm, spec, &summary);
  int64_t linears = 0;
  for (const auto& m : lm->modules(/*include_self=*/false)) linears += m->as<LinearImpl>() ? 1 : 0;
  // tiny qwen3_moe: 3 layers x (4 attention + 6 experts x 3) + 3 routers + lm_head.
  CHECK(linears == 3 * (4 + 6 * 3) + 3 + 1);
  CHECK(summary.ignored == 3 + 1);  // routers and lm_head
  CHECK(static_cast<int64_t>(targets.size()) == linears - 4);
  CHECK(summary.quantized == static_cast<int64_t>(targets.size()));
  // qwen3_moe has no shared expert: that default pattern matches nothing either.
  CHECK(summary.unmatched_ignores == std::vector<std::string>{"re:.*shared_expert_gate$", "re:.*never_there$"});
  CHECK(summary.bytes_after * 7 < summary.bytes_before);  // fp32 -> ~4.5 bits
  std::map<std::string, std::set<std::string>> groups;
  for (const auto& t : targets) groups[t.fusion_group].insert(t.name.substr(t.name.rfind('.') + 1));
  CHECK(groups.at("model.layers.0.self_attn.qkv") == std::set<std::string>{"q_proj", "k_proj", "v_proj"});
  CHECK(groups.at("model.layers.2.mlp.experts.5.gate_up") == std::set<std::string>{"gate_proj", "up_proj"});
  CHECK(groups.at("model.layers.1.self_attn.o_proj").size() == 1);
}

TEST_CASE("packed base: weights are fake-quantized with the group's minimum global scale; ignored ones exact") {
  for (auto scheme : {QuantScheme::nvfp4, QuantScheme::mxfp4}) {
    CAPTURE(quant_scheme_name(scheme));
    auto lm = testing::tiny_model("qwen3_moe", /*seed=*/5);
    const auto ids = torch::randint(3, 97, {2, 9}, torch::kLong);
    const auto clean = logits_of(*lm, ids);
    auto spec = nvfp4_spec();
    spec.scheme = scheme;
    const auto targets = plan_quantization(*lm, spec, nullptr);
    const auto scales = fused_global_scales(targets, spec);
    PackedBase base(*lm, spec);
    for (const auto& t : targets) {
      const auto w = t.linear->weight.detach();
      const auto want = scheme == QuantScheme::nvfp4 ? kernels::nvfp4_fake_quantize(w, scales.at(t.fusion_group))
                                                     : kernels::mxfp4_fake_quantize(w);
      REQUIRE(torch::equal(t.linear->effective_weight(), want));
      if (scheme == QuantScheme::nvfp4)
        CHECK(scales.at(t.fusion_group) <= kernels::nvfp4_global_scale(w));  // the shared G is the minimum
    }
    CHECK_FALSE(lm->lm_head->has_weight_hook());
    // Gaussian-initialised weights: about 20.4 dB (NVFP4) and 19.0 dB (MXFP4), REFERENCE.md.
    REQUIRE(base.sqnr_db().has_value());
    CHECK(*base.sqnr_db() > (scheme == QuantScheme::nvfp4 ? 19.5 : 18.0));
    CHECK(*base.sqnr_db() < (scheme == QuantScheme::nvfp4 ? 21.5 : 20.0));
    const auto quantized = logits_of(*lm, ids);
    const double rel = ((quantized - clean).norm() / clean.norm()).item<double>();
    CHECK(rel > 1e-4);  // it does quantize
    CHECK(rel < 0.8);   // and stays the same model (init std 0.2 makes these tiny logits sharp)
  }
}

TEST_CASE("packed base onto a device, group by group, with codes only: the codes and logits of packing in place") {
  auto spec = nvfp4_spec();
  auto whole = testing::tiny_model("qwen2_moe", /*seed=*/6);
  auto streamed = testing::tiny_model("qwen2_moe", /*seed=*/6);
  const auto ids = torch::randint(3, 97, {2, 9}, torch::kLong);
  PackedBase reference(*whole, spec, Residency::codes_only);
  PackedBase base(*streamed, spec, Residency::codes_only, torch::Device(torch::kCPU));
  const TensorMap want = reference.packed_tensors(), got = base.packed_tensors();
  REQUIRE(got.size() == want.size());
  for (const auto& [name, tensor] : want) {
    CAPTURE(name);
    REQUIRE(got.count(name) == 1);
    CHECK(torch::equal(got.at(name), tensor));
  }
  for (const auto& t : plan_quantization(*streamed, spec, nullptr)) CHECK(t.linear->weight.numel() == 0);  // freed
  CHECK(torch::equal(logits_of(*streamed, ids), logits_of(*whole, ids)));
  REQUIRE(base.sqnr_db().has_value());
  CHECK(*base.sqnr_db() == doctest::Approx(*reference.sqnr_db()));
}

TEST_CASE("QAT: forward equals the packed base; the gradient is straight-through") {
  auto lm = testing::tiny_model("qwen3_moe", /*seed=*/6);
  auto twin = testing::tiny_model("qwen3_moe", /*seed=*/6);
  const auto ids = torch::randint(3, 97, {2, 7}, torch::kLong);
  const auto spec = nvfp4_spec();
  install_qat(*lm, spec);
  const auto trained = logits_of(*lm, ids);
  {
    PackedBase rollout(*twin, spec);
    CHECK(torch::equal(trained.detach(), logits_of(*twin, ids).detach()));  // learner sees what rollout computes
  }
  // Reference for the gradient: a plain model whose weights ARE the fake-quantized values.
  auto plain = testing::tiny_model("qwen3_moe", /*seed=*/6);
  const auto targets = plan_quantization(*plain, spec, nullptr);
  const auto scales = fused_global_scales(targets, spec);
  {
    torch::NoGradGuard no_grad;
    for (const auto& t : targets) t.linear->weight.copy_(kernels::nvfp4_fake_quantize(t.linear->weight, scales.at(t.fusion_group)));
  }
  const auto weights = torch::randn(trained.sizes());
  (trained * weights).sum().backward();
  (logits_of(*plain, ids) * weights).sum().backward();
  const auto a = lm->named_parameters(), b = plain->named_parameters();
  double max_grad = 0;
  for (const auto& item : a) {
    const auto& ga = item.value().grad();
    const auto& gb = b[item.key()].grad();
    CAPTURE(item.key());
    REQUIRE(ga.defined() == gb.defined());  // experts no token chose get no gradient in either
    if (!ga.defined()) continue;
    CHECK(torch::allclose(ga, gb, 1e-5, 1e-6));
    max_grad = std::max(max_grad, ga.abs().max().item<double>());
  }
  CHECK(max_grad > 1e-3);
}

TEST_CASE("W4A4: after calibration a layer computes W_q Q(x), not Q(W_q x)") {
  auto lm = testing::tiny_model("qwen3_moe", /*seed=*/7);
  auto spec = nvfp4_spec();
  spec.quantize_inputs = true;
  PackedBase base(*lm, spec);
  CHECK_FALSE(base.inputs_calibrated());
  const auto ids = torch::randint(3, 97, {2, 8}, torch::kLong);
  base.calibrate_inputs(ids, torch::ones_like(ids));
  REQUIRE(base.inputs_calibrated());
  const std::string name = "model.layers.0.self_attn.q_proj";
  auto& q = *lm->model->layers[0]->as<DecoderLayerImpl>()->self_attn->q_proj;
  REQUIRE(q.has_input_hook());
  const float g = base.input_global_scale(name);
  CHECK(std::isfinite(g));
  CHECK(g > 0);
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({5, q.in_features()}) * 3;
  const auto y = q.forward(x);
  const auto w = q.effective_weight();
  CHECK(torch::equal(y, torch::matmul(fake_quantize_input(x, QuantScheme::nvfp4, g), w.t())));
  CHECK_FALSE(torch::allclose(y, torch::matmul(x, w.t()), 1e-6, 1e-7));  // the input was quantized...
  const auto out = torch::matmul(x, w.t());
  const float g_out = kernels::nvfp4_global_scale(out);
  CHECK_FALSE(torch::allclose(y, fake_quantize_input(out, QuantScheme::nvfp4, g_out), 1e-6, 1e-7));  // ...not the output
}
