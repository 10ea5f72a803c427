// Example plugin: stage type "example.dapo_filter", DAPO's dynamic-sampling
// filter between reward and learner. It drops every prompt group whose
// rewards are all equal (within `tolerance`): under GRPO such a group has
// zero advantage, so it only dilutes the token-mean loss. Samples and scores
// leave with the same rows, in order. Put the reference (if any) after the
// filter so that its log-probs stay row-aligned (and it scores fewer rows):
//
//   plugins = ["build/examples/plugins/dapo_filter/libqerl_dapo_filter.so"]
//   [stages.dapo]
//   uses = "example.dapo_filter"
//   inputs = { samples = "rollout.samples", scores = "reward.scores" }
//   [stages.learner]
//   inputs = { samples = "dapo.samples", scores = "dapo.scores" }
//   [stages.reference]
//   inputs = { samples = "dapo.samples" }
//
// Metrics: filter/groups, filter/kept_groups, filter/dropped_groups,
// filter/dropped_fraction, and filter/passthrough = 1 on a step where every
// group was uniform: the learner needs rows to step on, so that batch goes
// on whole (its update has no policy-gradient signal, as without the filter).
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "actors/payloads.hpp"
#include "group_filter.hpp"
#include "runtime/plugin_api.hpp"

namespace qerl::examples {
namespace {

using actors::RolloutBatch;
using actors::Scores;

// The rows `kept` (ascending) of `batch`: each run of consecutive rows is
// sliced out, and the runs are joined as replica parts are (re-padded).
runtime::PayloadPtr kept_samples(const RolloutBatch& batch, const std::vector<int64_t>& kept) {
  std::vector<runtime::PayloadPtr> runs;
  for (size_t begin = 0; begin < kept.size();) {
    size_t end = begin + 1;
    while (end < kept.size() && kept[end] == kept[end - 1] + 1) ++end;
    runs.push_back(batch.rows(kept[begin], kept[end - 1] + 1));
    begin = end;
  }
  return runs.size() == 1 ? runs.front() : runs.front()->gather(runs);
}

template <class T>
std::vector<T> pick(const std::vector<T>& all, const std::vector<int64_t>& kept) {
  std::vector<T> out;
  for (int64_t row : kept) out.push_back(all[row]);
  return out;
}

runtime::PayloadPtr kept_scores(const Scores& scores, const std::vector<int64_t>& kept) {
  auto out = std::make_shared<Scores>();
  out->rewards = scores.rewards.index_select(0, torch::tensor(kept, torch::kLong));  // [kept] float32
  const size_t rows = static_cast<size_t>(scores.rewards.size(0));
  if (scores.correct.size() == rows) out->correct = pick(scores.correct, kept);
  if (scores.formatted.size() == rows) out->formatted = pick(scores.formatted, kept);
  return out;
}

class DapoFilter final : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& context) override {
    tolerance_ = context.stage->option<double>("tolerance");
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    const auto samples = input.get<RolloutBatch>("samples");
    const auto scores = input.get<Scores>("scores");
    const torch::Tensor rewards = scores->rewards.to(torch::kCPU).to(torch::kDouble).contiguous();  // [B]
    if (rewards.dim() != 1 || rewards.size(0) != samples->size())
      throw Error("scores hold " + std::to_string(rewards.numel()) + " rewards for " +
                  std::to_string(samples->size()) + " samples");
    const double* r = rewards.data_ptr<double>();
    const GroupSelection selection =
        select_informative_groups(samples->group_ids, std::vector<double>(r, r + rewards.numel()), tolerance_);

    const bool all_uniform = selection.groups > 0 && selection.uniform_groups == selection.groups;
    const int64_t dropped = all_uniform ? 0 : selection.uniform_groups;
    runtime::StepOutput out;
    out.metrics["filter/groups"] = static_cast<double>(selection.groups);
    out.metrics["filter/kept_groups"] = static_cast<double>(selection.groups - dropped);
    out.metrics["filter/dropped_groups"] = static_cast<double>(dropped);
    out.metrics["filter/dropped_fraction"] =
        selection.groups ? static_cast<double>(dropped) / static_cast<double>(selection.groups) : 0.0;
    out.metrics["filter/passthrough"] = all_uniform ? 1.0 : 0.0;
    if (dropped == 0) {  // nothing to drop, or nothing would be left: the batch goes on as it came
      out.ports["samples"] = samples;
      out.ports["scores"] = scores;
    } else {
      out.ports["samples"] = kept_samples(*samples, selection.kept_rows);
      out.ports["scores"] = kept_scores(*scores, selection.kept_rows);
    }
    return out;
  }

 private:
  double tolerance_ = 0.0;
};

runtime::StageType dapo_filter_type() {
  using runtime::port;
  dsl::StageTypeSchema s;
  s.name = "example.dapo_filter";
  s.doc = "Example plugin: DAPO dynamic sampling. Drops the prompt groups whose rewards are all equal "
          "(zero GRPO advantage); samples and scores leave row-aligned. Metrics filter/*.";
  s.inputs = {port<RolloutBatch>("samples", "sampled responses, whole groups"),
              port<Scores>("scores", "one reward per response")};
  s.outputs = {port<RolloutBatch>("samples", "the responses of the groups kept"),
               port<Scores>("scores", "their rewards, row-aligned with samples")};
  s.keys = {runtime::at_least(runtime::key("tolerance", dsl::ValueKind::floating, 0.0,
                                           "A group whose rewards span at most this much (max - min) "
                                           "counts as all-equal and is dropped."),
                              0)};
  return runtime::StageType{s, [] { return std::make_unique<DapoFilter>(); }};
}

}  // namespace
}  // namespace qerl::examples

QERL_PLUGIN(registry) { registry.add(qerl::examples::dapo_filter_type()); }
