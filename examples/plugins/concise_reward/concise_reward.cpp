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
#include "dsl/pipeline_spec.hpp"
#include "runtime/plugin.hpp"
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
  dsl::StageTypeSchema s;
  s.name = "example.concise_reward";
  s.doc = "Example plugin: 1 for a correct final answer, minus `penalty` per token beyond `budget`.";
  s.inputs = {dsl::PortSpec{"samples", "RolloutBatch", "sampled responses", false}};
  s.outputs = {dsl::PortSpec{"scores", "Scores", "one reward per response", false}};
  dsl::KeySpec budget;
  budget.name = "budget";
  budget.kind = dsl::ValueKind::integer;
  budget.default_value = dsl::Value{int64_t{64}};
  budget.min = 0;
  budget.doc = "Response tokens allowed without penalty.";
  dsl::KeySpec penalty;
  penalty.name = "penalty";
  penalty.kind = dsl::ValueKind::floating;
  penalty.default_value = dsl::Value{0.01};
  penalty.min = 0;
  penalty.doc = "Reward subtracted per token beyond the budget.";
  s.keys = {budget, penalty};
  return runtime::StageType{s, [] { return std::make_unique<ConciseReward>(); }};
}

}  // namespace
}  // namespace qerl::examples

QERL_PLUGIN(registry) { registry.add(qerl::examples::concise_reward_type()); }
