// score_responses with shared prompt passes (rows of one GRPO group run
// their prompt once): log-probs, entropies and parameter gradients equal
// those of scoring each row alone with one full forward, on random groups
// with left-padded prompts of different lengths and right-padded responses.
#include <doctest/doctest.h>

#include <torch/types.h>

#include "actors/payloads.hpp"
#include "actors/response_scoring.hpp"
#include "tests/actors/test_batches.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl;

namespace {

// groups x members rows; prompt g has length 3 + 2g, response lengths vary per row.
std::shared_ptr<actors::RolloutBatch> grouped_batch(int64_t groups, int64_t members, int64_t vocab, uint64_t seed) {
  const int64_t R = 6;
  auto batch = actors::testing::grouped_batch(
      groups, members, R, vocab, seed, [](int64_t g) { return 3 + 2 * g; },
      [R](int64_t row) { return 1 + (row * 5 + 3) % R; });
  batch->temperature = 0.9;
  return batch;
}

}  // namespace

TEST_CASE("shared prompt passes score like one full forward per row, gradients included") {
  for (const std::string type : {"qwen3_moe", "qwen2_moe", "llama"}) {
    CAPTURE(type);
    auto lm = models::testing::tiny_model(type, /*seed=*/3);
    const auto batch = grouped_batch(/*groups=*/3, /*members=*/4, /*vocab=*/97, /*seed=*/11);
    const int64_t B = batch->size();
    const torch::Tensor mask = batch->response_mask.to(torch::kFloat);
    const torch::Tensor weights = torch::randn({B, batch->response_width()}) * mask;

    const auto shared = actors::score_responses(*lm, *batch, torch::arange(B), /*with_entropy=*/true);
    ((shared.logprobs * weights).sum() + (shared.entropy * mask).sum() * 0.1).backward();
    const auto shared_grads = actors::testing::take_gradients(*lm);

    std::vector<torch::Tensor> logprobs, entropies;
    for (int64_t r = 0; r < B; ++r) {  // one row at a time: no sharing possible
      const auto alone = actors::score_responses(*lm, *batch, torch::tensor({r}), /*with_entropy=*/true);
      ((alone.logprobs * weights[r]).sum() + (alone.entropy * mask[r]).sum() * 0.1).backward();
      logprobs.push_back(alone.logprobs);
      entropies.push_back(alone.entropy);
    }
    const auto alone_grads = actors::testing::take_gradients(*lm);
    CHECK(torch::allclose(shared.logprobs * mask, torch::cat(logprobs) * mask, /*rtol=*/1e-5, /*atol=*/1e-5));
    CHECK(torch::allclose(shared.entropy * mask, torch::cat(entropies) * mask, 1e-5, 1e-5));
    double max_diff = 0, max_grad = 0;
    for (size_t i = 0; i < alone_grads.size(); ++i) {
      max_diff = std::max(max_diff, (shared_grads[i] - alone_grads[i]).abs().max().item<double>());
      max_grad = std::max(max_grad, alone_grads[i].abs().max().item<double>());
    }
    CHECK(max_grad > 1e-3);  // the check below compares real gradients
    CHECK(max_diff < 1e-4 * max_grad);
  }
}

TEST_CASE("group_prompts pairs rows by prompt ids and mask; a lone prompt or all-distinct rows share nothing") {
  const auto batch = grouped_batch(/*groups=*/3, /*members=*/4, /*vocab=*/97, /*seed=*/5);
  const int64_t P = batch->prompt_width;
  const auto groups = actors::group_prompts(batch->tokens.slice(1, 0, P), batch->attention_mask.slice(1, 0, P));
  REQUIRE(groups.prompt_rows.defined());
  CHECK(torch::equal(groups.prompt_rows, torch::tensor({0, 4, 8}, torch::kLong)));
  CHECK(torch::equal(groups.member_of, torch::tensor({0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}, torch::kLong)));
  // Same ids, different mask: a prompt that starts with the pad id (0 here)
  // is not the shorter prompt padded.
  const torch::Tensor ids = torch::tensor({{0, 7, 8}, {0, 7, 8}}, torch::kLong);
  const torch::Tensor mask = torch::tensor({{false, true, true}, {true, true, true}});
  CHECK_FALSE(actors::group_prompts(ids, mask).prompt_rows.defined());
  CHECK(actors::group_prompts(ids, torch::ones_like(mask)).prompt_rows.numel() == 1);
}

TEST_CASE("shared prompt passes with one-token responses equal full forwards") {
  auto lm = models::testing::tiny_model("qwen3_moe", /*seed=*/4);
  auto batch = grouped_batch(/*groups=*/2, /*members=*/3, /*vocab=*/97, /*seed=*/9);
  const int64_t P = batch->prompt_width;
  batch->tokens = batch->tokens.slice(1, 0, P + 1).clone();
  batch->attention_mask = batch->attention_mask.slice(1, 0, P + 1).clone();
  batch->attention_mask.select(1, P).fill_(true);
  batch->response_mask = torch::ones({batch->size(), 1}, torch::kBool);
  torch::NoGradGuard no_grad;
  const auto shared = actors::score_responses(*lm, *batch, torch::arange(batch->size()), /*with_entropy=*/false);
  for (int64_t r = 0; r < batch->size(); ++r) {
    const auto alone = actors::score_responses(*lm, *batch, torch::tensor({r}), /*with_entropy=*/false);
    CHECK(shared.logprobs[r][0].item<float>() == doctest::Approx(alone.logprobs[0][0].item<float>()).epsilon(1e-5));
  }
}

TEST_CASE("captured and replayed routes: shared prompt passes equal one full forward per row") {
  auto lm = models::testing::tiny_model("qwen3_moe", /*seed=*/6);
  const auto batch = grouped_batch(/*groups=*/3, /*members=*/3, /*vocab=*/97, /*seed=*/13);
  const int64_t B = batch->size(), P = batch->prompt_width, R = batch->response_width();
  torch::NoGradGuard no_grad;
  // Positions whose routes mean something: real tokens except the last column.
  const torch::Tensor real = batch->attention_mask.slice(1, 0, P + R - 1).unsqueeze(-1).unsqueeze(-1);

  const auto shared = actors::score_responses(*lm, *batch, torch::arange(B), false, models::Routing::capture());
  REQUIRE(shared.routing.indices.defined());
  REQUIRE(shared.routing.indices.size(1) == P + R);
  for (int64_t r = 0; r < B; ++r) {
    const auto alone = actors::score_responses(*lm, *batch, torch::tensor({r}), false, models::Routing::capture());
    CHECK(torch::equal(shared.routing.indices[r].slice(0, 0, P + R - 1) * real[r],
                       alone.routing.indices[0].slice(0, 0, P + R - 1) * real[r]));
  }

  // Replay random routes (same for every member at prompt positions, as a sampler's would be).
  torch::manual_seed(21);
  const auto& config = lm->config();
  auto routes = torch::randint(0, config.num_experts, shared.routing.indices.sizes(), torch::kShort);
  for (int64_t r = 0; r < B; ++r) routes[r].slice(0, 0, P).copy_(routes[r - r % 3].slice(0, 0, P));
  // Two distinct experts per position: replay of a duplicate pair would be a different mixture.
  routes.select(-1, 1).copy_((routes.select(-1, 0) + 1) % config.num_experts);
  const torch::Tensor mask = batch->attention_mask.clone();
  const auto replay = models::Routing::replay(routes, mask);
  const auto shared_replay = actors::score_responses(*lm, *batch, torch::arange(B), false, replay);
  const torch::Tensor response = batch->response_mask.to(torch::kFloat);
  CHECK((shared_replay.logprobs - shared.logprobs).abs().mul(response).max().item<double>() > 1e-3);
  for (int64_t r = 0; r < B; ++r) {
    const auto rows = torch::tensor({r});
    const auto alone = actors::score_responses(*lm, *batch, rows, false,
                                               models::Routing::replay(routes.index_select(0, rows),
                                                                       mask.index_select(0, rows)));
    CHECK(torch::allclose(shared_replay.logprobs[r] * response[r], alone.logprobs[0] * response[r], 1e-5, 1e-5));
    CHECK(torch::equal(shared_replay.routing.native_indices[r].slice(0, 0, P + R - 1) * real[r],
                       alone.routing.native_indices[0].slice(0, 0, P + R - 1) * real[r]));
  }
}
