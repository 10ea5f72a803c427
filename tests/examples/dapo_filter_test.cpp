// The DAPO filter example (examples/plugins/dapo_filter): its group
// selection matches an independent computation (rewards laid out as a
// [groups, samples] tensor, spread = amax - amin) on seeded random rewards,
// in group order and shuffled; the stage loaded from its .so keeps exactly
// the rows of the groups with a reward spread, with every column of those
// rows intact, and reports the counts; a batch with nothing to drop, or
// nothing that would be left, goes on as it came.
#include <doctest/doctest.h>
#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "actors/payloads.hpp"
#include "common/error.hpp"
#include "examples/plugins/dapo_filter/group_filter.hpp"
#include "runtime/plugin_api.hpp"
#include "runtime/plugin_loader.hpp"

using namespace qerl;
using actors::RolloutBatch;
using actors::Scores;

namespace {

// Seeded rewards of `groups` groups of `n` samples, rows of a group
// contiguous: a third of the groups all equal, a third equal up to a jitter
// of at most tolerance / 2, the rest spread by at least 0.1 + tolerance.
std::vector<double> grouped_rewards(std::mt19937& rng, int64_t groups, int64_t n, double tolerance) {
  std::uniform_real_distribution<double> value(-1.0, 1.0), jitter(0.0, tolerance / 2);
  std::vector<double> rewards;
  for (int64_t g = 0; g < groups; ++g) {
    const double base = value(rng);
    const int kind = static_cast<int>(rng() % 3);
    for (int64_t i = 0; i < n; ++i) {
      if (kind == 0) rewards.push_back(base);
      else if (kind == 1) rewards.push_back(base + jitter(rng));
      else rewards.push_back(i == 0 ? base : base + 0.1 + tolerance + std::abs(value(rng)));
    }
  }
  return rewards;
}

// The independent reference: uniform[g] = max - min of group g <= tolerance.
std::vector<bool> uniform_groups(const std::vector<double>& rewards, int64_t groups, double tolerance) {
  const torch::Tensor r = torch::tensor(rewards, torch::kDouble).view({groups, -1});  // [G, n]
  const torch::Tensor uniform = (r.amax(1) - r.amin(1)) <= tolerance;                 // [G] bool
  std::vector<bool> out;
  for (int64_t g = 0; g < groups; ++g) out.push_back(uniform[g].item<bool>());
  return out;
}

// A seeded RolloutBatch of `groups` x `n` rows: left-padded prompts of 1..P
// tokens, right-padded responses of 1..R tokens, sampler log-probs.
std::shared_ptr<RolloutBatch> random_batch(std::mt19937& rng, int64_t groups, int64_t n) {
  const int64_t B = groups * n, P = 5, R = 7;
  auto batch = std::make_shared<RolloutBatch>();
  batch->prompt_width = P;
  batch->pad_token_id = 0;
  batch->tokens = torch::zeros({B, P + R}, torch::kLong);
  batch->attention_mask = torch::zeros({B, P + R}, torch::kBool);
  batch->response_mask = torch::zeros({B, R}, torch::kBool);
  batch->rollout_logprobs = torch::zeros({B, R}, torch::kFloat);
  batch->temperature = 0.7;
  batch->weight_version = 3;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t prompt = 1 + rng() % P, response = 1 + rng() % R;
    for (int64_t c = P - prompt; c < P + response; ++c) {
      batch->tokens[b][c] = static_cast<int64_t>(1 + rng() % 250);
      batch->attention_mask[b][c] = true;
    }
    for (int64_t c = 0; c < response; ++c) {
      batch->response_mask[b][c] = true;
      batch->rollout_logprobs[b][c] = -static_cast<float>(rng() % 1000) / 100.0f;
    }
    batch->responses.push_back("response " + std::to_string(b));
    batch->answers.push_back(1000 + b);
    batch->group_ids.push_back(b / n);
    batch->truncated.push_back(rng() % 2);
  }
  return batch;
}

std::shared_ptr<Scores> scores_of(const std::vector<double>& rewards, std::mt19937& rng) {
  auto scores = std::make_shared<Scores>();
  scores->rewards = torch::tensor(rewards, torch::kDouble).to(torch::kFloat);  // [B] float32
  for (size_t i = 0; i < rewards.size(); ++i) {
    scores->correct.push_back(rng() % 2);
    scores->formatted.push_back(rng() % 2);
  }
  return scores;
}

// Row `row` of `batch` without padding: prompt tokens, response tokens, log-probs.
struct RealRow {
  std::vector<int64_t> prompt, response;
  std::vector<float> logprobs;
  bool operator==(const RealRow& o) const {
    return prompt == o.prompt && response == o.response && logprobs == o.logprobs;
  }
};
RealRow real_row(const RolloutBatch& batch, int64_t row) {
  RealRow out;
  const int64_t P = batch.prompt_width;
  for (int64_t c = 0; c < P; ++c)
    if (batch.attention_mask[row][c].item<bool>()) out.prompt.push_back(batch.tokens[row][c].item<int64_t>());
  for (int64_t c = 0; c < batch.response_width(); ++c) {
    if (!batch.response_mask[row][c].item<bool>()) continue;
    out.response.push_back(batch.tokens[row][P + c].item<int64_t>());
    out.logprobs.push_back(batch.rollout_logprobs[row][c].item<float>());
  }
  return out;
}

// The filter stage from the built plugin, set up with `tolerance`.
struct LoadedFilter {
  runtime::StageRegistry registry;
  dsl::StageSpec spec;
  runtime::StageContext context;
  std::unique_ptr<runtime::Stage> stage;

  explicit LoadedFilter(double tolerance) {
    runtime::load_plugin(QERL_DAPO_FILTER_PLUGIN, registry);
    const runtime::StageType* type = registry.find("example.dapo_filter");
    REQUIRE(type);
    spec.name = "dapo";
    spec.uses = "example.dapo_filter";
    spec.options["tolerance"] = tolerance;
    context.stage = &spec;
    stage = type->make();
    stage->setup(context);
  }

  runtime::StepOutput run(runtime::PayloadPtr samples, runtime::PayloadPtr scores) {
    runtime::StepInput input;
    input.ports["samples"] = std::move(samples);
    input.ports["scores"] = std::move(scores);
    return stage->run(input);
  }
};

}  // namespace

TEST_CASE("select_informative_groups keeps the rows of the groups with a reward spread, shuffled or not") {
  std::mt19937 rng(20260);
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t groups = 1 + rng() % 12, n = 1 + rng() % 6;
    const double tolerance = std::vector<double>{0.0, 1e-3, 0.05}[trial % 3];
    CAPTURE(trial);
    const std::vector<double> rewards = grouped_rewards(rng, groups, n, tolerance);
    const std::vector<bool> uniform = uniform_groups(rewards, groups, tolerance);

    // Rows in group order.
    std::vector<int64_t> ids(groups * n);
    for (int64_t i = 0; i < groups * n; ++i) ids[i] = 7 * (i / n) + 3;  // any ids
    std::vector<int64_t> expected;
    for (int64_t i = 0; i < groups * n; ++i)
      if (!uniform[i / n]) expected.push_back(i);
    examples::GroupSelection got = examples::select_informative_groups(ids, rewards, tolerance);
    CHECK(got.groups == groups);
    CHECK(got.uniform_groups == std::count(uniform.begin(), uniform.end(), true));
    CHECK(got.kept_rows == expected);

    // The same rows in a seeded shuffle: groups are no longer contiguous.
    std::vector<int64_t> order(groups * n);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int64_t> shuffled_ids;
    std::vector<double> shuffled_rewards;
    std::vector<int64_t> shuffled_expected;
    for (size_t at = 0; at < order.size(); ++at) {
      shuffled_ids.push_back(ids[order[at]]);
      shuffled_rewards.push_back(rewards[order[at]]);
      if (!uniform[order[at] / n]) shuffled_expected.push_back(static_cast<int64_t>(at));
    }
    got = examples::select_informative_groups(shuffled_ids, shuffled_rewards, tolerance);
    CHECK(got.kept_rows == shuffled_expected);
  }
}

TEST_CASE("select_informative_groups refuses mismatched lengths and non-finite rewards") {
  CHECK_THROWS_WITH_AS(examples::select_informative_groups({1, 1, 2}, {0.0, 1.0}, 0.0),
                       "dapo_filter: 2 rewards for 3 samples", Error);
  CHECK_THROWS_WITH_AS(examples::select_informative_groups({1, 1}, {0.0, std::nan("")}, 0.0),
                       "dapo_filter: the reward of sample 1 is not a finite number", Error);
}

TEST_CASE("the dapo_filter stage passes on the kept groups' rows intact, row-aligned with their scores") {
  std::mt19937 rng(77);
  LoadedFilter filter(/*tolerance=*/1e-3);
  for (int trial = 0; trial < 8; ++trial) {
    CAPTURE(trial);
    const int64_t groups = 3 + rng() % 6, n = 2 + rng() % 4;
    const std::vector<double> rewards = grouped_rewards(rng, groups, n, 1e-3);
    const std::vector<bool> uniform = uniform_groups(rewards, groups, 1e-3);
    const int64_t n_uniform = std::count(uniform.begin(), uniform.end(), true);
    if (n_uniform == 0 || n_uniform == groups) continue;  // the pass-through cases are tested below
    const auto batch = random_batch(rng, groups, n);
    const auto scores = scores_of(rewards, rng);

    const runtime::StepOutput out = filter.run(batch, scores);
    const auto kept = std::dynamic_pointer_cast<const RolloutBatch>(out.ports.at("samples"));
    const auto kept_scores = std::dynamic_pointer_cast<const Scores>(out.ports.at("scores"));
    REQUIRE(kept);
    REQUIRE(kept_scores);
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < groups * n; ++i)
      if (!uniform[i / n]) rows.push_back(i);
    REQUIRE(kept->size() == static_cast<int64_t>(rows.size()));
    REQUIRE(kept_scores->rewards.size(0) == kept->size());
    for (size_t j = 0; j < rows.size(); ++j) {
      const int64_t i = rows[j];
      CHECK(kept->responses[j] == batch->responses[i]);
      CHECK(kept->answers[j] == batch->answers[i]);
      CHECK(kept->group_ids[j] == batch->group_ids[i]);
      CHECK(kept->truncated[j] == batch->truncated[i]);
      CHECK(real_row(*kept, j) == real_row(*batch, i));
      CHECK(kept_scores->rewards[j].item<float>() == scores->rewards[i].item<float>());
      CHECK(kept_scores->correct[j] == scores->correct[i]);
      CHECK(kept_scores->formatted[j] == scores->formatted[i]);
    }
    CHECK(kept->temperature == batch->temperature);
    CHECK(kept->weight_version == batch->weight_version);
    CHECK(out.metrics.at("filter/groups") == groups);
    CHECK(out.metrics.at("filter/dropped_groups") == n_uniform);
    CHECK(out.metrics.at("filter/kept_groups") == groups - n_uniform);
    CHECK(out.metrics.at("filter/dropped_fraction") == doctest::Approx(double(n_uniform) / groups));
    CHECK(out.metrics.at("filter/passthrough") == 0);
  }
}

TEST_CASE("a batch with no uniform group, or only uniform groups, goes on as it came") {
  std::mt19937 rng(5);
  LoadedFilter filter(/*tolerance=*/0.0);
  const auto batch = random_batch(rng, /*groups=*/3, /*n=*/4);

  SUBCASE("every group has a spread: nothing dropped") {
    const auto scores = scores_of({0, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 1, 0, 0, 0}, rng);
    const runtime::StepOutput out = filter.run(batch, scores);
    CHECK(out.ports.at("samples") == batch);
    CHECK(out.ports.at("scores") == scores);
    CHECK(out.metrics.at("filter/dropped_groups") == 0);
    CHECK(out.metrics.at("filter/kept_groups") == 3);
    CHECK(out.metrics.at("filter/passthrough") == 0);
  }
  SUBCASE("every group uniform: the learner still gets rows, and the step says so") {
    const auto scores = scores_of({0, 0, 0, 0, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5}, rng);
    const runtime::StepOutput out = filter.run(batch, scores);
    CHECK(out.ports.at("samples") == batch);
    CHECK(out.ports.at("scores") == scores);
    CHECK(out.metrics.at("filter/dropped_groups") == 0);
    CHECK(out.metrics.at("filter/passthrough") == 1);
  }
  SUBCASE("scores for another batch are one clear error") {
    const auto scores = scores_of({0, 1, 0}, rng);
    CHECK_THROWS_WITH_AS(filter.run(batch, scores), "scores hold 3 rewards for 12 samples", Error);
  }
}
