// The static-cache generation loop (what the CUDA engine runs, here with
// eager steps on the CPU) against the dynamic loop of generator.hpp and a
// full forward: the same greedy tokens, log-probs, stop reasons and routes
// for every architecture, with repeated prompts, rows stopping at many
// different steps (the bucket shrinks), a cache reused and grown across
// calls, and sampled log-probs equal to log_softmax(logits / T).
#include <doctest/doctest.h>

#include <limits>
#include <map>
#include <set>

#include <torch/types.h>
#include <torch/utils.h>

#include "models/generate/static_generator.hpp"
#include "tests/models/generate/generation_checks.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl::models;
using namespace qerl::models::testing;

TEST_CASE("static-cache loop == dynamic loop: greedy tokens, log-probs and routes, every architecture") {
  for (const auto& type : all_types()) {
    CAPTURE(type);
    auto lm = tiny_model(type);
    auto prompts = random_prompts(5, 3);
    prompts.push_back(prompts[1]);  // repeats share a prefill
    prompts.push_back(prompts[1]);
    auto config = greedy_config(11);
    config.capture_routing = true;
    StaticGenerator engine(std::make_unique<EagerDecodeStep>(), /*sync_every=*/3);
    check_same_generation(engine.generate(*lm, prompts, config), generate(*lm, prompts, config), 5e-4);
  }
}

TEST_CASE("static-cache loop: rows stopping at many steps shrink the bucket, each row as in the dynamic loop") {
  auto lm = tiny_model("qwen2_moe");
  const auto prompts = random_prompts(13, 21);
  auto config = greedy_config(20);
  config.capture_routing = true;
  config.stop.eos_token_ids = frequent_tokens(generate(*lm, prompts, config), 3);
  const auto want = generate(*lm, prompts, config);
  std::set<size_t> lengths;
  for (const auto& row : want) lengths.insert(row.tokens.size());
  CHECK(lengths.size() >= 4);  // rows really stop at different steps
  for (const int64_t sync_every : {1, 4, 7}) {
    CAPTURE(sync_every);
    StaticGenerator engine(std::make_unique<EagerDecodeStep>(), sync_every);
    check_same_generation(engine.generate(*lm, prompts, config), want, 5e-4);
  }
}

TEST_CASE("static-cache loop: one cache serves later calls and grows when a call needs more") {
  auto lm = tiny_model("qwen3_moe");
  StaticGenerator engine(std::make_unique<EagerDecodeStep>(), /*sync_every=*/5);
  const auto short_prompts = random_prompts(3, 5);
  const auto many_prompts = random_prompts(9, 6);
  engine.generate(*lm, short_prompts, greedy_config(6));
  const int64_t small = engine.cache_bytes();
  CHECK(small > 0);
  check_same_generation(engine.generate(*lm, many_prompts, greedy_config(70)), generate(*lm, many_prompts, greedy_config(70)), 5e-4);
  const int64_t grown = engine.cache_bytes();
  CHECK(grown > small);
  check_same_generation(engine.generate(*lm, short_prompts, greedy_config(6)), generate(*lm, short_prompts, greedy_config(6)), 5e-4);
  CHECK(engine.cache_bytes() == grown);  // reused, not reallocated
  engine.release();
  CHECK(engine.cache_bytes() == 0);
  check_same_generation(engine.generate(*lm, short_prompts, greedy_config(1)), generate(*lm, short_prompts, greedy_config(1)), 5e-4);
}

TEST_CASE("static-cache loop: a call after one that left NaN in the cache generates what the dynamic loop does") {
  auto lm = tiny_model("qwen3_moe");
  StaticGenerator engine(std::make_unique<EagerDecodeStep>(), /*sync_every=*/4);
  const auto prompts = random_prompts(5, 31);
  torch::Tensor v = lm->model->layer_list[1]->self_attn->v_proj->weight;
  const torch::Tensor clean = v.detach().clone();
  {
    torch::NoGradGuard no_grad;
    v.fill_(std::numeric_limits<float>::quiet_NaN());  // every key/value slot this call writes is NaN
  }
  engine.generate(*lm, prompts, greedy_config(9));
  {
    torch::NoGradGuard no_grad;
    v.copy_(clean);
  }
  check_same_generation(engine.generate(*lm, random_prompts(3, 32), greedy_config(12)),
                        generate(*lm, random_prompts(3, 32), greedy_config(12)), 5e-4);
}

TEST_CASE("static-cache loop: sampled log-probs equal a full forward's log_softmax(logits / T); a seed repeats") {
  auto lm = tiny_model("mixtral");
  const auto prompts = random_prompts(6, 9);
  GenerationConfig config;
  config.max_new_tokens = 12;
  config.sampling = {/*temperature=*/0.8, /*top_p=*/0.95, /*top_k=*/40};
  config.seed = 5;
  StaticGenerator engine(std::make_unique<EagerDecodeStep>(), /*sync_every=*/4);
  const auto rows = engine.generate(*lm, prompts, config);
  const auto again = engine.generate(*lm, prompts, config);
  torch::NoGradGuard no_grad;
  std::set<int64_t> distinct;
  for (size_t i = 0; i < prompts.size(); ++i) {
    CAPTURE(i);
    CHECK(rows[i].tokens == again[i].tokens);
    auto full = prompts[i];
    full.insert(full.end(), rows[i].tokens.begin(), rows[i].tokens.end());
    distinct.insert(rows[i].tokens.begin(), rows[i].tokens.end());
    ForwardArgs args;
    args.input_ids = torch::tensor(full, torch::kLong).unsqueeze(0);
    const auto logp = (lm->forward(args).logits[0] / 0.8).log_softmax(-1);
    const auto p = static_cast<int64_t>(prompts[i].size());
    REQUIRE(rows[i].logprobs.size() == rows[i].tokens.size());
    for (size_t j = 0; j < rows[i].tokens.size(); ++j)
      CHECK(rows[i].logprobs[j] ==
            doctest::Approx(logp[p - 1 + static_cast<int64_t>(j)][rows[i].tokens[j]].item<float>()).epsilon(1e-4));
  }
  CHECK(distinct.size() > 5);  // really sampled, not one repeated token
}

TEST_CASE("static-mode KV cache: bad calls fail with qerl::Error") {
  auto lm = tiny_model("llama");
  auto cache = KVCache::allocate(lm->config(), 2, 8, torch::kFloat, torch::kCPU);
  cache.slot = torch::zeros({1}, torch::kLong);
  ForwardArgs args;
  args.input_ids = torch::ones({2, 3}, torch::kLong);  // a static step takes one token per row
  args.cache = &cache;
  CHECK_THROWS_AS(lm->forward(args), qerl::Error);
  CHECK_THROWS_AS(cache.leading_rows(3), qerl::Error);
  CHECK_THROWS_AS(StaticGenerator(nullptr), qerl::Error);
  StaticGenerator engine(std::make_unique<EagerDecodeStep>());
  CHECK_THROWS_AS(engine.generate(*lm, {{5, 1000}}, greedy_config(3)), qerl::Error);  // out of vocabulary
  CHECK_THROWS_AS(engine.generate(*lm, {}, greedy_config(3)), qerl::Error);
}
