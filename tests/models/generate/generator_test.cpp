// Generation: the cached, batched, left-padded loop produces what a naive
// full-recompute greedy loop produces for each prompt alone; log-probs match
// a full forward; captured routing equals the routes of a full forward over
// prompt + generated tokens except the last, and replaying it (R3) gives the
// rollout's own logits; stop rules end rows with the right reason.
#include <doctest/doctest.h>

#include <torch/types.h>

#include <algorithm>
#include <map>
#include <set>
#include <torch/utils.h>

#include "models/generate/generator.hpp"
#include "tests/models/generate/generation_checks.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl::models;
using namespace qerl::models::testing;

namespace {

const std::vector<std::vector<int64_t>> kPrompts{{5, 17, 33, 8, 60, 41, 9}, {72, 3}, {11, 12, 13, 14}};

// Greedy without a cache: re-run the whole sequence for every new token.
std::vector<int64_t> naive_greedy(CausalLM& lm, std::vector<int64_t> sequence, int64_t new_tokens) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < new_tokens; ++i) {
    ForwardArgs args;
    args.input_ids = torch::tensor(sequence, torch::kLong).unsqueeze(0);
    const int64_t next = lm->forward(args).logits[0][-1].argmax().item<int64_t>();
    out.push_back(next);
    sequence.push_back(next);
  }
  return out;
}

std::vector<int64_t> concat(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  auto out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

GenerationConfig greedy(int64_t n) {
  GenerationConfig config;
  config.max_new_tokens = n;
  config.sampling.temperature = 0;
  return config;
}

}  // namespace

TEST_CASE("batched cached greedy generation equals naive per-prompt greedy") {
  for (const auto& type : all_types()) {
    CAPTURE(type);
    auto lm = tiny_model(type);
    auto rows = generate(*lm, kPrompts, greedy(12));
    REQUIRE(rows.size() == kPrompts.size());
    for (size_t i = 0; i < kPrompts.size(); ++i) {
      CAPTURE(i);
      CHECK(rows[i].tokens == naive_greedy(lm, kPrompts[i], 12));
      CHECK(rows[i].logprobs.size() == 12);
      CHECK(rows[i].finish_reason == FinishReason::length);
    }
  }
}

TEST_CASE("repeated prompts share one prefill: each repeat generates what the prompt alone does") {
  for (const auto& type : moe_types()) {
    CAPTURE(type);
    auto lm = tiny_model(type);
    auto config = greedy(10);
    config.capture_routing = true;
    // Groups as GRPO sends them, plus a lone prompt between two groups.
    const std::vector<std::vector<int64_t>> grouped{kPrompts[0], kPrompts[0], kPrompts[0], kPrompts[1],
                                                    kPrompts[2], kPrompts[2]};
    const std::vector<size_t> source{0, 0, 0, 1, 2, 2};
    auto rows = generate(*lm, grouped, config);
    auto alone = generate(*lm, kPrompts, config);
    for (size_t i = 0; i < grouped.size(); ++i) {
      CAPTURE(i);
      const auto& ref = alone[source[i]];
      CHECK(rows[i].tokens == ref.tokens);
      CHECK(rows[i].tokens == naive_greedy(lm, grouped[i], 10));
      REQUIRE(rows[i].logprobs.size() == ref.logprobs.size());
      for (size_t j = 0; j < ref.logprobs.size(); ++j) CHECK(rows[i].logprobs[j] == doctest::Approx(ref.logprobs[j]).epsilon(1e-5));
      CHECK(torch::equal(rows[i].routing, ref.routing));
    }
    // Sampled repeats of one prompt draw different responses.
    GenerationConfig sampled;
    sampled.max_new_tokens = 12;
    sampled.seed = 3;
    auto draws = generate(*lm, std::vector<std::vector<int64_t>>(6, kPrompts[1]), sampled);
    bool differ = false;
    for (size_t i = 1; i < draws.size(); ++i) differ = differ || draws[i].tokens != draws[0].tokens;
    CHECK(differ);
  }
}

TEST_CASE("sampled log-probs equal a full forward's log_softmax(logits / T)") {
  auto lm = tiny_model("qwen3_moe");
  GenerationConfig config;
  config.max_new_tokens = 10;
  config.sampling = {/*temperature=*/0.8, /*top_p=*/0.95, /*top_k=*/40};
  config.seed = 5;
  auto rows = generate(*lm, kPrompts, config);
  auto again = generate(*lm, kPrompts, config);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    CHECK(rows[i].tokens == again[i].tokens);
    const auto full = concat(kPrompts[i], rows[i].tokens);
    ForwardArgs args;
    args.input_ids = torch::tensor(full, torch::kLong).unsqueeze(0);
    auto logp = (lm->forward(args).logits[0] / 0.8).log_softmax(-1);
    const auto p = static_cast<int64_t>(kPrompts[i].size());
    for (size_t j = 0; j < rows[i].tokens.size(); ++j) {
      const float expected = logp[p - 1 + static_cast<int64_t>(j)][rows[i].tokens[j]].item<float>();
      CHECK(rows[i].logprobs[j] == doctest::Approx(expected).epsilon(1e-4));
    }
  }
}

TEST_CASE("captured routing covers prompt + generated[:-1] and replays to the rollout's logits") {
  for (const auto& type : moe_types()) {
    CAPTURE(type);
    auto lm = tiny_model(type);
    auto config = greedy(9);
    config.capture_routing = true;
    auto rows = generate(*lm, kPrompts, config);
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < kPrompts.size(); ++i) {
      CAPTURE(i);
      const auto& row = rows[i];
      const auto full = concat(kPrompts[i], row.tokens);
      const auto fed = static_cast<int64_t>(full.size()) - 1;  // the last token was never fed
      REQUIRE(row.routing.defined());
      CHECK(row.routing.sizes() ==
            torch::IntArrayRef{fed, lm->config().num_moe_layers(), lm->config().num_experts_per_tok});
      ForwardArgs args;
      args.input_ids = torch::tensor(full, torch::kLong).unsqueeze(0);
      args.routing = Routing::capture();
      auto native = lm->forward(args);
      CHECK(torch::equal(row.routing, native.routing.indices[0].narrow(0, 0, fed)));
      // R3: replay the rollout's routes everywhere except the last token.
      auto indices = torch::zeros_like(native.routing.indices);
      indices[0].narrow(0, 0, fed).copy_(row.routing);
      auto mask = torch::ones({1, fed + 1}, torch::kBool);
      mask[0][fed] = false;
      args.routing = Routing::replay(indices, mask);
      CHECK(torch::equal(lm->forward(args).logits, native.logits));
    }
  }
}

TEST_CASE("the batch shrinks to its unfinished rows: each row still generates what it does alone") {
  auto lm = tiny_model("qwen3_moe");
  torch::manual_seed(21);
  std::vector<std::vector<int64_t>> prompts;
  for (int i = 0; i < 12; ++i) {
    const auto t = torch::randint(3, 97, {2 + i % 5}, torch::kLong);
    prompts.emplace_back(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  }
  auto config = greedy(16);
  config.capture_routing = true;
  // Stop on the ids the free run emits most, so rows end at many different steps.
  config.stop.eos_token_ids = frequent_tokens(generate(*lm, prompts, config), 3);
  const auto rows = generate(*lm, prompts, config);
  std::set<size_t> lengths;
  for (size_t i = 0; i < prompts.size(); ++i) {
    CAPTURE(i);
    const auto alone = generate(*lm, {prompts[i]}, config)[0];
    lengths.insert(rows[i].tokens.size());
    CHECK(rows[i].tokens == alone.tokens);
    CHECK(rows[i].finish_reason == alone.finish_reason);
    REQUIRE(rows[i].logprobs.size() == alone.logprobs.size());
    for (size_t j = 0; j < alone.logprobs.size(); ++j) CHECK(rows[i].logprobs[j] == doctest::Approx(alone.logprobs[j]).epsilon(1e-5));
    CHECK(torch::equal(rows[i].routing, alone.routing));
  }
  CHECK(lengths.size() >= 3);  // rows really did stop at different steps
}

TEST_CASE("rows stop at EOS, stop sequences and stop strings; others run on") {
  auto lm = tiny_model("mixtral");
  auto free_run = generate(*lm, kPrompts, greedy(10));
  const auto& first = free_run[0].tokens;

  auto eos = greedy(10);
  eos.stop.eos_token_ids = {first[3]};
  auto rows = generate(*lm, kPrompts, eos);
  const auto stop_at = std::find(first.begin(), first.end(), first[3]) - first.begin();
  CHECK(rows[0].tokens == std::vector<int64_t>(first.begin(), first.begin() + stop_at + 1));
  CHECK(rows[0].finish_reason == FinishReason::eos);
  CHECK(rows[0].logprobs.size() == rows[0].tokens.size());
  for (size_t i = 1; i < kPrompts.size(); ++i) {
    // Rows that never emit the EOS id are unaffected by the stopped row.
    const auto& free = free_run[i].tokens;
    if (std::find(free.begin(), free.end(), first[3]) == free.end()) CHECK(rows[i].tokens == free);
  }

  auto sequence = greedy(10);
  sequence.stop.stop_sequences = {{first[4], first[5]}};
  auto seq_rows = generate(*lm, {kPrompts[0]}, sequence);
  CHECK(seq_rows[0].finish_reason == FinishReason::stop_sequence);
  CHECK(seq_rows[0].tokens.size() <= 6);

  // Decode ids as letters; stop when the text contains the letters of tokens 6..7.
  auto letters = [](const std::vector<int64_t>& ids) {
    std::string s;
    for (auto id : ids) s += static_cast<char>('A' + id % 26);
    return s;
  };
  auto strings = greedy(10);
  strings.stop.decode = letters;
  strings.stop.stop_strings = {letters({first[6], first[7]})};
  auto str_rows = generate(*lm, {kPrompts[0]}, strings);
  CHECK(str_rows[0].finish_reason == FinishReason::stop_string);
  CHECK(letters(str_rows[0].tokens).find(strings.stop.stop_strings[0]) != std::string::npos);
  CHECK(str_rows[0].tokens.size() <= 8);
}

TEST_CASE("bad generation requests fail with qerl::Error") {
  auto lm = tiny_model("qwen2");
  CHECK_THROWS_AS(generate(*lm, {}, greedy(3)), qerl::Error);
  CHECK_THROWS_AS(generate(*lm, {{}}, greedy(3)), qerl::Error);
  CHECK_THROWS_AS(generate(*lm, {{1, 500}}, greedy(3)), qerl::Error);
  CHECK_THROWS_AS(generate(*lm, {{1, 2}}, greedy(0)), qerl::Error);
  auto strings = greedy(3);
  strings.stop.stop_strings = {"x"};  // no decode function
  CHECK_THROWS_AS(generate(*lm, {{1, 2}}, strings), qerl::Error);
}
