// Stages `reward.arith` and `reward.gsm8k`: the outcome reward of each
// response — correct_reward when the number after its last "####" equals
// the reference answer — plus format_reward when its last line is a
// well-formed answer line. Both tasks share the parser in tasks/answer.
#include <cmath>

#include "actors/payloads.hpp"
#include "actors/stage_factories.hpp"
#include "dsl/pipeline_spec.hpp"
#include "runtime/stage.hpp"
#include "tasks/answer.hpp"

namespace qerl::actors {
namespace {

class RewardStage final : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& context) override {
    correct_reward_ = context.stage->option<double>("correct_reward");
    format_reward_ = context.stage->option<double>("format_reward");
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    const auto samples = input.get<RolloutBatch>("samples");
    const int64_t B = samples->size();
    if (static_cast<int64_t>(samples->responses.size()) != B)
      throw Error("samples hold " + std::to_string(samples->responses.size()) + " decoded responses for " +
                  std::to_string(B) + " reference answers");
    auto scores = std::make_shared<Scores>();
    scores->rewards = torch::zeros({B}, torch::kFloat);
    auto reward = scores->rewards.accessor<float, 1>();
    double correct = 0, formatted = 0;
    for (int64_t i = 0; i < B; ++i) {
      const std::string& text = samples->responses[i];
      const bool ok = tasks::is_correct(text, samples->answers[i]);
      const bool well_formed = tasks::has_answer_line(text);
      reward[i] = static_cast<float>((ok ? correct_reward_ : 0.0) + (well_formed ? format_reward_ : 0.0));
      scores->correct.push_back(ok);
      scores->formatted.push_back(well_formed);
      correct += ok, formatted += well_formed;
    }
    runtime::StepOutput out;
    const double n = std::max<double>(1, static_cast<double>(B));
    out.metrics["critic/rewards/mean"] = B ? scores->rewards.mean().item<double>() : 0.0;
    out.metrics["critic/rewards/std"] = B > 1 ? scores->rewards.std().item<double>() : 0.0;
    out.metrics["reward/accuracy"] = correct / n;
    out.metrics["reward/format_rate"] = formatted / n;
    out.ports["scores"] = std::move(scores);
    return out;
  }

 private:
  double correct_reward_ = 1.0;
  double format_reward_ = 0.0;
};

}  // namespace

std::unique_ptr<runtime::Stage> make_reward_stage() { return std::make_unique<RewardStage>(); }

}  // namespace qerl::actors
