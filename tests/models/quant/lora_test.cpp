// LoRA adapters on tiny random MoEs: a fresh adapter (B = 0) changes
// nothing; with random A and B the model equals one whose weights are
// W + (alpha / r) B A (merged by hand); gradients reach only A and B when
// the base is frozen; adapters over a packed NVFP4 base add to the
// dequantized weights; tensors() / load() round-trip and reject bad input.
#include <doctest/doctest.h>

#include "common/error.hpp"
#include "models/quant/lora.hpp"
#include "models/quant/quantize_model.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl;
using namespace qerl::models;

namespace {

torch::Tensor logits_for(CausalLMImpl& lm, const torch::Tensor& ids) {
  ForwardArgs args;
  args.input_ids = ids;
  return lm.forward(args).logits;
}

// Random B (A is already random) so that the adapters do something.
void randomize(LoraAdapters& lora, uint64_t seed) {
  torch::manual_seed(seed);
  auto tensors = lora.tensors();
  for (auto& [name, t] : tensors) t = torch::randn(t.sizes()) * 0.1;
  lora.load(tensors);
}

}  // namespace

TEST_CASE("LoRA: fresh adapters change nothing; trained ones equal merged weights W + scale * B A") {
  auto lm = testing::tiny_model("qwen3_moe", /*seed=*/8);
  auto merged = testing::tiny_model("qwen3_moe", /*seed=*/8);
  const auto ids = torch::randint(3, 97, {2, 6}, torch::kLong);
  const auto before = logits_for(*lm, ids).detach();
  LoraConfig config;
  config.rank = 4;
  config.alpha = 8;
  LoraAdapters lora(*lm, config, /*seed=*/3);
  // Default targets: 3 layers x (4 attention projections + 6 experts x 3), not the routers.
  CHECK(lora.num_adapters() == 3 * (4 + 6 * 3));
  CHECK(torch::equal(logits_for(*lm, ids).detach(), before));

  randomize(lora, 11);
  const auto tensors = lora.tensors();
  {
    torch::NoGradGuard no_grad;
    for (auto& item : merged->named_modules("", false)) {
      auto* linear = item.value()->as<LinearImpl>();
      const auto a = tensors.find(item.key() + ".lora_A.weight");
      if (linear == nullptr || a == tensors.end()) continue;
      const auto& b = tensors.at(item.key() + ".lora_B.weight");
      linear->weight.add_(torch::matmul(b, a->second) * lora.scale());
    }
  }
  const auto adapted = logits_for(*lm, ids);
  CHECK_FALSE(torch::allclose(adapted, before, 1e-4, 1e-4));
  CHECK(torch::allclose(adapted, logits_for(*merged, ids), 1e-4, 1e-5));
}

TEST_CASE("LoRA on a frozen packed base: gradients reach only the adapters; the base is the dequantized one") {
  auto lm = testing::tiny_model("qwen3_moe", /*seed=*/9);
  QuantSpec spec;
  spec.scheme = QuantScheme::nvfp4;
  PackedBase base(*lm, spec);
  for (auto& p : lm->parameters()) p.requires_grad_(false);
  LoraConfig config;
  config.rank = 2;
  LoraAdapters lora(*lm, config, /*seed=*/4);
  randomize(lora, 12);
  const auto ids = torch::randint(3, 97, {2, 5}, torch::kLong);
  logits_for(*lm, ids).square().sum().backward();
  for (const auto& p : lm->parameters()) CHECK_FALSE(p.grad().defined());
  double grads = 0;
  for (const auto& t : lora.parameters()) grads += t.grad().defined() ? t.grad().abs().sum().item<double>() : 0.0;
  CHECK(grads > 0);
  auto& q = *lm->model->layers[1]->as<DecoderLayerImpl>()->self_attn->q_proj;
  const auto x = torch::randn({3, q.in_features()});
  const auto& t = lora.tensors();
  const auto a = t.at("model.layers.1.self_attn.q_proj.lora_A.weight");
  const auto b = t.at("model.layers.1.self_attn.q_proj.lora_B.weight");
  torch::NoGradGuard no_grad;
  const auto want = torch::matmul(x, q.effective_weight().t()) + torch::matmul(torch::matmul(x, a.t()), b.t()) * lora.scale();
  CHECK(torch::allclose(q.forward(x), want, 1e-5, 1e-6));
  CHECK_FALSE(torch::equal(q.effective_weight(), q.weight));  // the base really is the quantized one
}

TEST_CASE("LoRA: tensors round-trip; a missing or mis-shaped tensor and an empty target list are errors") {
  auto lm = testing::tiny_model("qwen3_moe", /*seed=*/10);
  LoraConfig config;
  config.rank = 3;
  config.target_modules = {"re:.*self_attn\\.(q|v)_proj$"};
  LoraAdapters lora(*lm, config, 5);
  CHECK(lora.num_adapters() == 3 * 2);
  randomize(lora, 13);
  const auto saved = lora.tensors();
  auto other = testing::tiny_model("qwen3_moe", /*seed=*/10);
  LoraAdapters copy(*other, config, 6);
  copy.load(saved);
  for (const auto& [name, t] : copy.tensors()) CHECK(torch::equal(t, saved.at(name)));
  auto missing = saved;
  missing.erase(missing.begin());
  CHECK_THROWS_AS(copy.load(missing), qerl::Error);
  auto wrong = saved;
  wrong.begin()->second = torch::zeros({1, 1});
  CHECK_THROWS_AS(copy.load(wrong), qerl::Error);
  config.target_modules = {"nothing_like_this"};
  CHECK_THROWS_AS(LoraAdapters(*lm, config, 1), qerl::Error);
}
