// Example RL reward plugin: stage type "example.concise_reward" scores each
// sampled response with the exact-match outcome reward of the built-in
// reward stages, minus `penalty` per response token beyond `budget`. It
// consumes the built-in RolloutBatch and produces Scores (actors/payloads.hpp),
// so it drops into any pipeline in place of reward.arith / reward.gsm8k:
//
//   plugins = ["build/examples/plugins/concise_reward/libqerl_concise_reward.so"]
//   [stages.reward]
//   uses = "example.concise_reward"
//   inputs = { samples = "rollout.samples" }
//   budget = 48
#include <algorithm>

#include "actors/payloads.hpp"
#include "runtime/plugin_api.hpp"
#include "tasks/answer.hpp"

namespace qerl::examples {
namespace {

class ConciseReward : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& context) override {
    budget_ = context.stage->option<int64_t>("budget");
    penalty_ = context.stage->option<double>("penalty");
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    const auto samples = input.get<actors::RolloutBatch>("samples");
    const torch::Tensor lengths = samples->response_mask.sum(1).to(torch::kCPU);  // [B] int64
    auto scores = std::make_shared<actors::Scores>();
    scores->rewards = torch::zeros({samples->size()}, torch::kFloat);
    double over_budget = 0;
    for (int64_t i = 0; i < samples->size(); ++i) {
      const bool correct = tasks::is_correct(samples->responses[i], samples->answers[i]);
      const int64_t excess = std::max<int64_t>(0, lengths[i].item<int64_t>() - budget_);
      scores->rewards[i] = (correct ? 1.0 : 0.0) - penalty_ * static_cast<double>(excess);
      scores->correct.push_back(correct);
      scores->formatted.push_back(tasks::has_answer_line(samples->responses[i]));
      over_budget += excess > 0;
    }
    runtime::StepOutput out;
    out.metrics["critic/rewards/mean"] = scores->rewards.mean().item<double>();
    out.metrics["reward/over_budget"] = samples->size() ? over_budget / static_cast<double>(samples->size()) : 0.0;
    out.ports["scores"] = std::move(scores);
    return out;
  }

 private:
  int64_t budget_ = 64;
  double penalty_ = 0.01;
};

runtime::StageType concise_reward_type() {
  using runtime::key;
  using runtime::port;
  using runtime::at_least;
  dsl::StageTypeSchema s;
  s.name = "example.concise_reward";
  s.doc = "Example plugin: 1 for a correct final answer, minus `penalty` per token beyond `budget`.";
  s.inputs = {port<actors::RolloutBatch>("samples", "sampled responses")};
  s.outputs = {port<actors::Scores>("scores", "one reward per response")};
  s.keys = {at_least(key("budget", dsl::ValueKind::integer, int64_t{64}, "Response tokens allowed without penalty."), 0),
            at_least(key("penalty", dsl::ValueKind::floating, 0.01, "Reward subtracted per token beyond the budget."),
                     0)};
  return runtime::StageType{s, [] { return std::make_unique<ConciseReward>(); }};
}

}  // namespace
}  // namespace qerl::examples

QERL_PLUGIN(registry) { registry.add(qerl::examples::concise_reward_type()); }
