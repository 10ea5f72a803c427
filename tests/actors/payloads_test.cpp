// RL payloads across replicas: sharding keeps GRPO groups whole, and
// gathering the shards of a RolloutBatch (each trimmed to its own widths)
// restores the original batch exactly, on random ragged rows.
#include <doctest/doctest.h>

#include <torch/types.h>

#include <set>

#include "actors/payloads.hpp"

using namespace qerl;
using namespace qerl::actors;

namespace {

// B rows in groups of G with random prompt/response lengths (seeded).
std::shared_ptr<RolloutBatch> random_batch(int64_t B, int64_t G, uint64_t seed) {
  torch::manual_seed(seed);
  const int64_t P = 7, R = 9, pad = 99;
  auto b = std::make_shared<RolloutBatch>();
  b->prompt_width = P;
  b->pad_token_id = pad;
  b->tokens = torch::full({B, P + R}, pad, torch::kLong);
  b->attention_mask = torch::zeros({B, P + R}, torch::kBool);
  b->response_mask = torch::zeros({B, R}, torch::kBool);
  b->rollout_logprobs = torch::zeros({B, R});
  b->routing = torch::zeros({B, P + R, 2, 2}, torch::kShort);
  for (int64_t i = 0; i < B; ++i) {
    // Row 0 has the longest prompt, the last row the longest response, so
    // that no single shard spans both widths.
    const int64_t p = i == 0 ? P : torch::randint(1, P, {1}).item<int64_t>();
    const int64_t r = i == B - 1 ? R : torch::randint(1, R, {1}).item<int64_t>();
    b->tokens[i].slice(0, P - p, P + r).copy_(torch::randint(0, 50, {p + r}));
    b->attention_mask[i].slice(0, P - p, P + r).fill_(true);
    b->response_mask[i].slice(0, 0, r).fill_(true);
    b->rollout_logprobs[i].slice(0, 0, r).copy_(-torch::rand({r}));
    b->routing[i].slice(0, P - p, P + r - 1).copy_(torch::randint(0, 8, {p + r - 1, 2, 2}));
    b->responses.push_back("response " + std::to_string(i));
    b->answers.push_back(i * 10);
    b->group_ids.push_back(100 + i / G);
    b->truncated.push_back(i % 3 == 0);
  }
  return b;
}

}  // namespace

TEST_CASE("shard_range splits rows at group boundaries, covering every row once") {
  CHECK(shard_range(12, 4, 0, 2) == std::make_pair<int64_t, int64_t>(0, 4));  // 3 groups: 1 + 2
  CHECK(shard_range(12, 4, 1, 2) == std::make_pair<int64_t, int64_t>(4, 12));
  for (int count = 1; count <= 5; ++count) {
    int64_t next = 0;
    for (int i = 0; i < count; ++i) {
      const auto [begin, end] = shard_range(24, 3, i, count);
      CHECK(begin == next);
      CHECK(begin % 3 == 0);
      next = end;
    }
    CHECK(next == 24);
  }
}

TEST_CASE("RolloutBatch shards keep groups whole and gather back to the original") {
  const auto batch = random_batch(/*B=*/8, /*G=*/2, /*seed=*/7);
  const int count = 3;
  std::vector<runtime::PayloadPtr> parts;
  std::set<int64_t> seen_in_earlier_shards;
  for (int i = 0; i < count; ++i) {
    auto part = std::dynamic_pointer_cast<const RolloutBatch>(batch->shard(i, count));
    REQUIRE(part);
    for (int64_t g : part->group_ids) CHECK(seen_in_earlier_shards.count(g) == 0);  // groups stay whole
    // Each shard is trimmed to its own widest prompt and response.
    CHECK(part->prompt_width <= batch->prompt_width);
    CHECK(part->tokens.size(1) == part->prompt_width + part->response_width());
    parts.push_back(part);
    seen_in_earlier_shards.insert(part->group_ids.begin(), part->group_ids.end());
  }
  const auto whole = std::dynamic_pointer_cast<const RolloutBatch>(parts.front()->gather(parts));
  REQUIRE(whole);
  CHECK(whole->prompt_width == batch->prompt_width);
  CHECK(torch::equal(whole->tokens, batch->tokens));
  CHECK(torch::equal(whole->attention_mask, batch->attention_mask));
  CHECK(torch::equal(whole->response_mask, batch->response_mask));
  CHECK(torch::equal(whole->rollout_logprobs, batch->rollout_logprobs));
  CHECK(torch::equal(whole->routing, batch->routing));
  CHECK(whole->responses == batch->responses);
  CHECK(whole->group_ids == batch->group_ids);
  CHECK(whole->truncated == batch->truncated);
}

TEST_CASE("PromptBatch shards by whole groups; Scores and RefLogprobs gather in replica order") {
  PromptBatch prompts;
  for (int64_t i = 0; i < 9; ++i) {
    prompts.prompt_ids.push_back({i, i + 1});
    prompts.answers.push_back(i);
    prompts.group_ids.push_back(i / 3);
    prompts.problem_ids.push_back(40 + i / 3);
  }
  auto first = std::dynamic_pointer_cast<const PromptBatch>(prompts.shard(0, 2));
  auto second = std::dynamic_pointer_cast<const PromptBatch>(prompts.shard(1, 2));
  CHECK(first->size() == 3);  // 3 groups over 2 replicas: 1 + 2
  CHECK(second->size() == 6);
  CHECK(second->group_ids.front() == 1);

  torch::manual_seed(3);
  auto s1 = std::make_shared<Scores>(), s2 = std::make_shared<Scores>();
  s1->rewards = torch::rand({3});
  s2->rewards = torch::rand({5});
  s1->correct = {1, 0, 1}, s2->correct = {0, 0, 1, 1, 0};
  s1->formatted = s1->correct, s2->formatted = s2->correct;
  auto scores = std::dynamic_pointer_cast<const Scores>(s1->gather({s1, s2}));
  CHECK(torch::equal(scores->rewards, torch::cat({s1->rewards, s2->rewards})));
  CHECK(scores->correct == std::vector<uint8_t>{1, 0, 1, 0, 0, 1, 1, 0});

  auto r1 = std::make_shared<RefLogprobs>(), r2 = std::make_shared<RefLogprobs>();
  r1->logprobs = -torch::rand({3, 4});
  r2->logprobs = -torch::rand({5, 6});
  auto ref = std::dynamic_pointer_cast<const RefLogprobs>(r1->gather({r1, r2}));
  CHECK(ref->logprobs.sizes() == torch::IntArrayRef({8, 6}));
  CHECK(torch::equal(ref->logprobs.slice(0, 0, 3).slice(1, 0, 4), r1->logprobs));
  CHECK(ref->logprobs.slice(0, 0, 3).slice(1, 4).abs().sum().item<double>() == 0);
  CHECK(torch::equal(ref->logprobs.slice(0, 3), r2->logprobs));
}
