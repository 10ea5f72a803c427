// Example plugin: stage type "example.keyword_reward" scores each text by
// the fraction of configured keywords it contains. It shows the whole
// plugin surface: a StageTypeSchema (ports, keys with defaults and docs), a
// Stage reading its keys in setup(), metrics, and the QERL_PLUGIN entry point.
//
//   plugins = ["build/examples/plugins/keyword_reward/libqerl_keyword_reward.so"]
//   [stages.reward]
//   uses = "example.keyword_reward"
//   inputs = { samples = "rollout.texts" }
//   keywords = ["####", "answer"]
#include <algorithm>
#include <cctype>
#include <numeric>

#include <spdlog/spdlog.h>

#include "dsl/pipeline_spec.hpp"
#include "examples/plugins/keyword_reward/text_payloads.hpp"
#include "runtime/plugin.hpp"

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
    context.logger->info("scoring {} keyword(s)", keywords_.size());
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    const auto batch = input.get<TextBatch>("samples");
    std::vector<double> scores;
    for (const auto& text : batch->texts) {
      const std::string haystack = case_sensitive_ ? text : lowered(text);
      const auto hits = std::count_if(keywords_.begin(), keywords_.end(), [&](const std::string& k) {
        return haystack.find(k) != std::string::npos;
      });
      scores.push_back(static_cast<double>(hits) / static_cast<double>(keywords_.size()));
    }
    runtime::StepOutput out;
    const double mean =
        scores.empty() ? 0.0 : std::accumulate(scores.begin(), scores.end(), 0.0) / scores.size();
    out.metrics["critic/rewards/mean"] = mean;
    out.ports["scores"] = std::make_shared<TextScores>(std::move(scores));
    return out;
  }

 private:
  std::vector<std::string> keywords_;
  bool case_sensitive_ = false;
};

runtime::StageType keyword_reward_type() {
  dsl::StageTypeSchema s;
  s.name = "example.keyword_reward";
  s.doc = "Example plugin: rewards each text with the fraction of `keywords` it contains.";
  s.inputs = {dsl::PortSpec{"samples", "TextBatch", "texts to score", false}};
  s.outputs = {dsl::PortSpec{"scores", "TextScores", "one reward in [0, 1] per text", false}};
  dsl::KeySpec keywords;
  keywords.name = "keywords";
  keywords.kind = dsl::ValueKind::string_list;
  keywords.default_value = dsl::Value{std::vector<std::string>{"####"}};
  keywords.doc = "Substrings to look for; the reward is the fraction found.";
  dsl::KeySpec case_sensitive;
  case_sensitive.name = "case_sensitive";
  case_sensitive.kind = dsl::ValueKind::boolean;
  case_sensitive.default_value = dsl::Value{false};
  case_sensitive.doc = "Match keywords case-sensitively.";
  s.keys = {keywords, case_sensitive};
  return runtime::StageType{s, [] { return std::make_unique<KeywordReward>(); }};
}

}  // namespace
}  // namespace qerl::examples

QERL_PLUGIN(registry) { registry.add(qerl::examples::keyword_reward_type()); }
