// Test helpers shared by the generation-loop tests: seeded random prompts,
// a greedy config, the comparison of two generations, and stop tokens that
// end rows at many different steps.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include <torch/types.h>

#include "models/generate/generator.hpp"

namespace qerl::models::testing {

// `count` prompts of 2-7 (+ `longer`) ids in [3, 97), seeded.
inline std::vector<std::vector<int64_t>> random_prompts(int count, int64_t seed, int64_t longer = 0) {
  torch::manual_seed(seed);
  std::vector<std::vector<int64_t>> prompts;
  for (int i = 0; i < count; ++i) {
    const auto t = torch::randint(3, 97, {2 + longer + i % 6}, torch::kLong);
    prompts.emplace_back(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  }
  return prompts;
}

inline GenerationConfig greedy_config(int64_t new_tokens) {
  GenerationConfig config;
  config.max_new_tokens = new_tokens;
  config.sampling.temperature = 0;
  return config;
}

// Same tokens, stop reasons and routes; log-probs within `tolerance`
// (absolute).
inline void check_same_generation(const std::vector<GeneratedSequence>& got,
                                  const std::vector<GeneratedSequence>& want, double tolerance) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i].tokens == want[i].tokens);
    CHECK(got[i].finish_reason == want[i].finish_reason);
    REQUIRE(got[i].logprobs.size() == want[i].logprobs.size());
    for (size_t j = 0; j < want[i].logprobs.size(); ++j) CHECK(std::abs(got[i].logprobs[j] - want[i].logprobs[j]) <= tolerance);
    CHECK(got[i].routing.defined() == want[i].routing.defined());
    if (want[i].routing.defined()) CHECK(torch::equal(got[i].routing, want[i].routing));
  }
}

// The ids a free run emits most: as EOS they end rows at many different steps.
inline std::vector<int64_t> frequent_tokens(const std::vector<GeneratedSequence>& rows, size_t count) {
  std::map<int64_t, int> counts;
  for (const auto& row : rows)
    for (int64_t id : row.tokens) ++counts[id];
  std::vector<std::pair<int, int64_t>> by_count;
  for (auto [id, n] : counts) by_count.push_back({n, id});
  std::sort(by_count.rbegin(), by_count.rend());
  std::vector<int64_t> out;
  for (size_t i = 0; i < std::min(count, by_count.size()); ++i) out.push_back(by_count[i].second);
  return out;
}


}  // namespace qerl::models::testing
