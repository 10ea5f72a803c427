// Router replay (REFERENCE.md "MoE router replay"): replaying captured
// routes reproduces the native forward bit for bit; replaying other routes
// changes the output while the router still receives gradients; positions
// outside replay_mask route natively.
#include <doctest/doctest.h>

#include <torch/types.h>
#include <torch/utils.h>

#include "tests/models/nn/tiny_model.hpp"

using namespace qerl::models;
using namespace qerl::models::testing;

namespace {

torch::Tensor random_tokens(int64_t batch, int64_t seq, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(3, 97, {batch, seq}, torch::kLong);
}

ForwardOutput run(CausalLM& lm, const torch::Tensor& ids, Routing routing) {
  ForwardArgs args;
  args.input_ids = ids;
  args.routing = std::move(routing);
  return lm->forward(args);
}

// Different experts than `indices` at every (token, layer), still distinct within top-k.
torch::Tensor shifted(const torch::Tensor& indices, int64_t num_experts) {
  return ((indices.to(torch::kLong) + 1) % num_experts).to(torch::kShort);
}

}  // namespace

TEST_CASE("replaying captured routes reproduces the native forward exactly") {
  for (const auto& type : moe_types()) {
    CAPTURE(type);
    auto lm = tiny_model(type);
    torch::NoGradGuard no_grad;
    auto ids = random_tokens(2, 11, 3);
    auto native = run(lm, ids, Routing::native());
    auto captured = run(lm, ids, Routing::capture());
    CHECK(!native.routing.indices.defined());
    REQUIRE(captured.routing.indices.defined());
    const auto& config = lm->config();
    CHECK(captured.routing.indices.sizes() ==
          torch::IntArrayRef{2, 11, config.num_moe_layers(), config.num_experts_per_tok});
    CHECK((captured.routing.indices.scalar_type() == torch::kShort));
    CHECK(torch::equal(native.logits, captured.logits));
    auto replayed = run(lm, ids, Routing::replay(captured.routing.indices));
    CHECK(torch::equal(replayed.logits, native.logits));
    CHECK(torch::equal(replayed.routing.indices, captured.routing.indices));
    CHECK(torch::equal(replayed.routing.native_indices, captured.routing.indices));
  }
}

TEST_CASE("replaying other routes changes the output and the router still gets gradients") {
  for (const auto& type : moe_types()) {
    CAPTURE(type);
    auto lm = tiny_model(type);
    auto ids = random_tokens(2, 9, 4);
    torch::Tensor captured;
    {
      torch::NoGradGuard no_grad;
      captured = run(lm, ids, Routing::capture()).routing.indices;
    }
    auto other = shifted(captured, lm->config().num_experts);
    auto native = run(lm, ids, Routing::native());
    auto out = run(lm, ids, Routing::replay(other));
    CHECK(torch::equal(out.routing.indices, other));
    // Only the first MoE layer sees the same input as in the native pass.
    CHECK(torch::equal(out.routing.native_indices.select(2, 0), captured.select(2, 0)));
    CHECK((out.logits - native.logits).abs().max().item<float>() > 1e-3);
    out.logits.to(torch::kFloat).log_softmax(-1).select(-1, 5).sum().backward();
    for (auto& layer : lm->model->layer_list) {
      if (!layer->is_moe()) continue;
      const auto& grad = layer->moe->gate->weight.grad();
      REQUIRE(grad.defined());
      CHECK(grad.abs().sum().item<float>() > 0);
    }
  }
}

TEST_CASE("positions outside replay_mask route natively") {
  auto lm = tiny_model("qwen3_moe");
  torch::NoGradGuard no_grad;
  auto ids = random_tokens(2, 8, 5);
  auto captured = run(lm, ids, Routing::capture());
  auto other = shifted(captured.routing.indices, lm->config().num_experts);
  // Replay everything except the last position (like a rollout's last token).
  auto mask = torch::ones({2, 8}, torch::kBool);
  mask.select(1, 7).fill_(false);
  auto out = run(lm, ids, Routing::replay(other, mask));
  CHECK(torch::equal(out.routing.indices.narrow(1, 0, 7), other.narrow(1, 0, 7)));
  CHECK(torch::equal(out.routing.indices.select(1, 7), out.routing.native_indices.select(1, 7)));
  auto all_native = run(lm, ids, Routing::replay(other, torch::zeros({2, 8}, torch::kBool)));
  CHECK(torch::equal(all_native.logits, captured.logits));
}

TEST_CASE("replay rejects malformed indices with a clear error") {
  auto lm = tiny_model("mixtral");
  torch::NoGradGuard no_grad;
  auto ids = random_tokens(1, 4, 6);
  auto good = run(lm, ids, Routing::capture()).routing.indices;
  CHECK_THROWS_AS(run(lm, ids, Routing::replay(good.narrow(1, 0, 3))), qerl::Error);
  auto bad = good.clone();
  bad[0][1][0][0] = 6;  // == num_experts
  CHECK_THROWS_AS(run(lm, ids, Routing::replay(bad)), qerl::Error);
  bad[0][1][0][0] = -1;
  CHECK_THROWS_AS(run(lm, ids, Routing::replay(bad)), qerl::Error);
}

TEST_CASE("dense models ignore routing modes") {
  auto lm = tiny_model("qwen2");
  torch::NoGradGuard no_grad;
  auto ids = random_tokens(1, 5, 7);
  auto out = run(lm, ids, Routing::capture());
  CHECK(!out.routing.indices.defined());
  CHECK(lm->config().num_moe_layers() == 0);
}
