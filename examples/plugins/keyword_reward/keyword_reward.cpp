// Example plugin: stage type "example.keyword_reward" rewards each sampled
// response with the fraction of configured keywords it contains. It shows
// the whole plugin surface on the built-in messages: a stage type declared
// with the plugin API (typed ports, keys with defaults and docs), a Stage
// reading its keys in setup(), metrics, and the QERL_PLUGIN entry point. It
// takes reward.arith's place in any pipeline (examples/pipelines/
// grpo_keyword_reward.toml):
//
//   plugins = ["build/examples/plugins/keyword_reward/libqerl_keyword_reward.so"]
//   [stages.reward]
//   uses = "example.keyword_reward"
//   inputs = { samples = "rollout.samples" }
//   keywords = ["####", "answer"]
#include <torch/types.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <string>
#include <vector>

#include "actors/payloads.hpp"
#include "runtime/plugin_api.hpp"

namespace qerl::examples {
namespace {

std::string lowered(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

class KeywordReward : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& context) override {
    keywords_ = context.stage->option<std::vector<std::string>>("keywords");
    case_sensitive_ = context.stage->option<bool>("case_sensitive");
    if (keywords_.empty()) throw Error("stage '" + context.stage->name + "': keywords is empty");
    if (!case_sensitive_)
      for (auto& k : keywords_) k = lowered(k);
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    const auto samples = input.get<actors::RolloutBatch>("samples");
    const int64_t B = static_cast<int64_t>(samples->responses.size());
    auto scores = std::make_shared<actors::Scores>();
    scores->rewards = torch::zeros({B}, torch::kFloat);  // [B] float32, CPU
    auto reward = scores->rewards.accessor<float, 1>();
    for (int64_t i = 0; i < B; ++i) {
      const std::string& text = samples->responses[i];
      const std::string haystack = case_sensitive_ ? text : lowered(text);
      const auto hits = std::count_if(keywords_.begin(), keywords_.end(), [&](const std::string& k) {
        return haystack.find(k) != std::string::npos;
      });
      reward[i] = static_cast<float>(hits) / static_cast<float>(keywords_.size());
    }
    runtime::StepOutput out;
    out.metrics["critic/rewards/mean"] = B ? scores->rewards.mean().item<double>() : 0.0;
    out.ports["scores"] = std::move(scores);
    return out;
  }

 private:
  std::vector<std::string> keywords_;
  bool case_sensitive_ = false;
};

runtime::StageType keyword_reward_type() {
  using runtime::key;
  using runtime::port;
  dsl::StageTypeSchema s;
  s.name = "example.keyword_reward";
  s.doc = "Example plugin: rewards each response with the fraction of `keywords` it contains.";
  s.inputs = {port<actors::RolloutBatch>("samples", "sampled responses to score")};
  s.outputs = {port<actors::Scores>("scores", "one reward in [0, 1] per response")};
  s.keys = {key("keywords", dsl::ValueKind::string_list, std::vector<std::string>{"####"},
                "Substrings to look for; the reward is the fraction found."),
            key("case_sensitive", dsl::ValueKind::boolean, false, "Match keywords case-sensitively.")};
  return runtime::StageType{s, [] { return std::make_unique<KeywordReward>(); }};
}

}  // namespace
}  // namespace qerl::examples

QERL_PLUGIN(registry) { registry.add(qerl::examples::keyword_reward_type()); }
