// Test helpers for the learner-side tests: rollout batches of random
// groups, and a model's parameter gradients.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <torch/types.h>

#include "actors/payloads.hpp"
#include "models/nn/causal_lm.hpp"

namespace qerl::actors::testing {

// groups x members rows of random tokens in [3, vocab): group g's prompt
// (prompt_len(g) tokens, left-padded to the longest) shared by its rows,
// row r's response (response_len(r) tokens, 1..R) right-padded to R.
inline std::shared_ptr<RolloutBatch> grouped_batch(int64_t groups, int64_t members, int64_t R, int64_t vocab,
                                                   uint64_t seed, const std::function<int64_t(int64_t)>& prompt_len,
                                                   const std::function<int64_t(int64_t)>& response_len) {
  torch::manual_seed(seed);
  int64_t P = 0;
  for (int64_t g = 0; g < groups; ++g) P = std::max(P, prompt_len(g));
  const int64_t B = groups * members;
  auto batch = std::make_shared<RolloutBatch>();
  batch->prompt_width = P;
  batch->tokens = torch::zeros({B, P + R}, torch::kLong);
  batch->attention_mask = torch::zeros({B, P + R}, torch::kBool);
  batch->response_mask = torch::zeros({B, R}, torch::kBool);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t len = prompt_len(g);
    const torch::Tensor prompt = torch::randint(3, vocab, {len}, torch::kLong);
    for (int64_t m = 0; m < members; ++m) {
      const int64_t row = g * members + m;
      batch->tokens[row].slice(0, P - len, P).copy_(prompt);
      batch->attention_mask[row].slice(0, P - len, P).fill_(true);
      const int64_t n = response_len(row);
      batch->tokens[row].slice(0, P, P + n).copy_(torch::randint(3, vocab, {n}, torch::kLong));
      batch->attention_mask[row].slice(0, P, P + n).fill_(true);
      batch->response_mask[row].slice(0, 0, n).fill_(true);
      batch->group_ids.push_back(g);
      batch->answers.push_back(0);
    }
  }
  return batch;
}

// A model's parameter gradients (zeros where none), cleared after.
inline std::vector<torch::Tensor> take_gradients(models::CausalLMImpl& lm) {
  std::vector<torch::Tensor> out;
  for (auto& p : lm.parameters()) out.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  lm.zero_grad();
  return out;
}

}  // namespace qerl::actors::testing
