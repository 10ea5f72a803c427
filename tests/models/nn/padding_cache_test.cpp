// A row's logits and routes do not depend on padding or batch mates (left
// and right padding, RoPE positions counted over real tokens), and decoding
// through the KV cache token by token equals the full forward.
#include <doctest/doctest.h>

#include <torch/types.h>
#include <torch/utils.h>

#include "tests/models/nn/tiny_model.hpp"

using namespace qerl::models;
using namespace qerl::models::testing;

namespace {

constexpr double kTol = 1e-5;

ForwardOutput single(CausalLM& lm, const torch::Tensor& ids) {
  ForwardArgs args;
  args.input_ids = ids.unsqueeze(0);
  args.routing = Routing::capture();
  return lm->forward(args);
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat) - b.to(torch::kFloat)).abs().max().item<double>();
}

}  // namespace

TEST_CASE("batched forward with left and right padding equals single-sequence forward") {
  for (const auto& type : all_types()) {
    CAPTURE(type);
    auto lm = tiny_model(type);
    torch::NoGradGuard no_grad;
    torch::manual_seed(11);
    auto a = torch::randint(3, 97, {9}, torch::kLong);
    auto b = torch::randint(3, 97, {5}, torch::kLong);
    auto ref_a = single(lm, a);
    auto ref_b = single(lm, b);
    for (bool left : {true, false}) {
      CAPTURE(left);
      auto ids = torch::zeros({2, 9}, torch::kLong);
      auto mask = torch::zeros({2, 9}, torch::kLong);
      ids[0].copy_(a);
      mask[0].fill_(1);
      const int64_t offset = left ? 4 : 0;
      ids[1].narrow(0, offset, 5).copy_(b);
      mask[1].narrow(0, offset, 5).fill_(1);
      ForwardArgs args;
      args.input_ids = ids;
      args.attention_mask = mask;
      args.routing = Routing::capture();
      auto out = lm->forward(args);
      CHECK(max_diff(out.logits[0], ref_a.logits[0]) < kTol);
      CHECK(max_diff(out.logits[1].narrow(0, offset, 5), ref_b.logits[0]) < kTol);
      if (lm->config().is_moe()) {
        CHECK(torch::equal(out.routing.indices[0], ref_a.routing.indices[0]));
        CHECK(torch::equal(out.routing.indices[1].narrow(0, offset, 5), ref_b.routing.indices[0]));
      }
    }
  }
}

TEST_CASE("KV-cache incremental decode equals the full forward") {
  for (const auto& type : all_types()) {
    CAPTURE(type);
    auto lm = tiny_model(type);
    torch::NoGradGuard no_grad;
    torch::manual_seed(12);
    // Row 1 is left-padded by 3; prefill 6 slots, then 1 token per call.
    auto ids = torch::randint(3, 97, {2, 10}, torch::kLong);
    auto mask = torch::ones({2, 10}, torch::kLong);
    mask[1].narrow(0, 0, 3).fill_(0);
    ForwardArgs full;
    full.input_ids = ids;
    full.attention_mask = mask;
    full.routing = Routing::capture();
    auto ref = lm->forward(full);

    auto cache = KVCache::allocate(lm->config(), 2, 10, lm->dtype(), lm->device());
    std::vector<torch::Tensor> logits, routes;
    for (int64_t start = 0; start < 10;) {
      const int64_t n = start == 0 ? 6 : 1;
      ForwardArgs step;
      step.input_ids = ids.narrow(1, start, n);
      step.attention_mask = mask.narrow(1, start, n);
      step.cache = &cache;
      step.routing = Routing::capture();
      auto out = lm->forward(step);
      logits.push_back(out.logits);
      if (out.routing.indices.defined()) routes.push_back(out.routing.indices);
      start += n;
    }
    CHECK(cache.length == 10);
    auto incremental = torch::cat(logits, 1);
    CHECK(max_diff(incremental[0], ref.logits[0]) < kTol);
    CHECK(max_diff(incremental[1].narrow(0, 3, 7), ref.logits[1].narrow(0, 3, 7)) < kTol);
    if (lm->config().is_moe()) {
      auto r = torch::cat(routes, 1);
      CHECK(torch::equal(r[0], ref.routing.indices[0]));
      CHECK(torch::equal(r[1].narrow(0, 3, 7), ref.routing.indices[1].narrow(0, 3, 7)));
    }
    ForwardArgs overflow;
    overflow.input_ids = ids.narrow(1, 0, 1);
    overflow.cache = &cache;
    CHECK_THROWS_AS(lm->forward(overflow), qerl::Error);
  }
}

TEST_CASE("logits_to_keep returns the last positions only") {
  auto lm = tiny_model("qwen3_moe");
  torch::NoGradGuard no_grad;
  torch::manual_seed(13);
  ForwardArgs args;
  args.input_ids = torch::randint(3, 97, {2, 7}, torch::kLong);
  auto all = lm->forward(args);
  args.logits_to_keep = 2;
  auto last = lm->forward(args);
  CHECK(last.logits.sizes() == torch::IntArrayRef{2, 2, 97});
  CHECK(torch::equal(last.logits, all.logits.narrow(1, 5, 2)));
}

TEST_CASE("mixtral sliding window limits attention to the last W positions") {
  auto config = tiny_config("mixtral");
  config["sliding_window"] = 2;  // 3 layers see back at most 3 positions
  CausalLM windowed(parse_model_config(config));
  init_weights(*windowed, 1);
  auto full = tiny_model("mixtral");
  torch::NoGradGuard no_grad;
  torch::manual_seed(14);
  auto ids = torch::randint(3, 97, {10}, torch::kLong);
  auto w = single(windowed, ids).logits[0];
  auto f = single(full, ids).logits[0];
  CHECK(max_diff(w.narrow(0, 0, 2), f.narrow(0, 0, 2)) < kTol);  // window not yet binding
  CHECK(max_diff(w.narrow(0, 2, 8), f.narrow(0, 2, 8)) > 1e-3);
  // Changing a token outside every later window leaves the last row unchanged.
  auto changed = ids.clone();
  changed[0] = (ids[0].item<int64_t>() + 1) % 97;
  CHECK(max_diff(single(windowed, changed).logits[0][9], w[9]) < kTol);
}

TEST_CASE("the pad token's embedding row gets no gradient, as in HF (padding_idx)") {
  auto lm = tiny_model("llama");  // pad_token_id 0
  ForwardArgs args;
  args.input_ids = torch::tensor({0, 0, 5, 6, 0}, torch::kLong).unsqueeze(0);
  lm->forward(args).logits.sum().backward();
  const auto& grad = lm->model->embed_tokens->weight.grad();
  CHECK(grad[0].abs().sum().item<float>() == 0);
  CHECK(grad[5].abs().sum().item<float>() > 0);
}
