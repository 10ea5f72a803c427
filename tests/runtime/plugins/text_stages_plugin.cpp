// Test-only plugin (not shipped): stage type "test.keyword_count" scores
// each text of a TextBatch by the fraction of `keywords` it contains. Its
// ports are typed with payloads defined in a header that the test binary
// compiles too, so loading it checks typed ports and StepInput::get<T>
// across shared objects.
#include <algorithm>
#include <cctype>
#include <numeric>

#include "runtime/plugin_api.hpp"
#include "tests/runtime/plugins/text_payloads.hpp"

namespace qerl::testing_plugins {
namespace {

std::string lowered(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

class KeywordCount : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& context) override {
    for (const auto& k : context.stage->option<std::vector<std::string>>("keywords")) keywords_.push_back(lowered(k));
    if (keywords_.empty()) throw Error("stage '" + context.stage->name + "': keywords is empty");
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    std::vector<double> scores;
    for (const auto& text : input.get<TextBatch>("texts")->texts) {
      const std::string haystack = lowered(text);
      const auto hits = std::count_if(keywords_.begin(), keywords_.end(), [&](const std::string& k) {
        return haystack.find(k) != std::string::npos;
      });
      scores.push_back(static_cast<double>(hits) / static_cast<double>(keywords_.size()));
    }
    runtime::StepOutput out;
    out.metrics["test/keyword_score_sum"] = std::accumulate(scores.begin(), scores.end(), 0.0);
    out.ports["scores"] = std::make_shared<TextScores>(std::move(scores));
    return out;
  }

 private:
  std::vector<std::string> keywords_;
};

runtime::StageType keyword_count_type() {
  using runtime::key;
  using runtime::port;
  dsl::StageTypeSchema s;
  s.name = "test.keyword_count";
  s.doc = "Test plugin: the fraction of `keywords` each text contains (case-insensitive).";
  s.inputs = {port<TextBatch>("texts", "texts to score")};
  s.outputs = {port<TextScores>("scores", "one score in [0, 1] per text")};
  s.keys = {key("keywords", dsl::ValueKind::string_list, std::vector<std::string>{"####"},
                "Substrings to look for.")};
  return runtime::StageType{s, [] { return std::make_unique<KeywordCount>(); }};
}

}  // namespace
}  // namespace qerl::testing_plugins

QERL_PLUGIN(registry) { registry.add(qerl::testing_plugins::keyword_count_type()); }
