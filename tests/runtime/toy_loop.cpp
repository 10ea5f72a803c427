// The toy RL loop's stages and its sequential reference simulation. The
// math is deliberately simple but couples every stage: prompts are seeded
// random numbers, samples scale them by (1 + w), rewards and reference
// values are functions of samples, the learner moves w.
#include "tests/runtime/toy_loop.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "tests/runtime/test_spec.hpp"

namespace qerl::runtime::testing {
namespace {

std::atomic<int> live_stages{0};

std::vector<double> prompts_of(int64_t step, int rows, uint32_t seed) {
  std::mt19937 rng(seed + static_cast<uint32_t>(step));
  std::uniform_real_distribution<double> dist(0.0, 1.0);
  std::vector<double> v(rows);
  for (auto& x : v) x = dist(rng);
  return v;
}
double sample_of(double prompt, double w) { return prompt * (1.0 + w); }
double reward_of(double sample) { return 1.0 - std::fabs(sample - 0.8); }
double reference_of(double sample) { return 0.5 * sample; }
double mean(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size();
}
double learner_update(double w, const std::vector<double>& scores, const std::vector<double>& ref) {
  return w + 0.1 * (mean(scores) - 0.2 * mean(ref));
}

std::vector<double> map_values(const std::vector<double>& in, double (*fn)(double)) {
  std::vector<double> out;
  for (double x : in) out.push_back(fn(x));
  return out;
}

// One toy stage: logs begin/end around `body`.
class ToyStage : public Stage {
 public:
  // `state`: the stage's own number (the learner's parameter), 0 initially.
  using Body = std::function<StepOutput(const StepInput&, Event&, double& state)>;
  ToyStage(std::string type, std::shared_ptr<ToyLoop> loop, Body body)
      : type_(std::move(type)), loop_(std::move(loop)), body_(std::move(body)) {
    ++live_stages;
  }
  ~ToyStage() override { --live_stages; }

  void setup(const StageContext& context) override {
    name_ = context.stage->name;
    replica_ = context.replica;
  }

  StepOutput run(const StepInput& input) override {
    Event e{name_, replica_, input.step, true, input.weight_version, -1, {}};
    if (!input.ports.empty()) {
      if (auto n = std::dynamic_pointer_cast<const Numbers>(input.ports.begin()->second))
        e.seen = n->values;
    }
    StepOutput out = body_(input, e, state_);  // may fill e.weights_step
    loop_->log->add(e);
    if (loop_->hook) loop_->hook(name_, input);
    e.begin = false;
    loop_->log->add(e);
    return out;
  }

 private:
  std::string type_;
  std::shared_ptr<ToyLoop> loop_;
  Body body_;
  std::string name_;
  int replica_ = 0;
  double state_ = 0;
};

StepOutput one(const std::string& port, PayloadPtr p) {
  StepOutput out;
  out.ports[port] = std::move(p);
  return out;
}

}  // namespace

PayloadPtr Numbers::shard(int index, int count) const {
  const size_t n = values.size();
  return std::make_shared<Numbers>(std::vector<double>(values.begin() + n * index / count,
                                                       values.begin() + n * (index + 1) / count));
}

PayloadPtr Numbers::gather(const std::vector<PayloadPtr>& parts) const {
  std::vector<double> all;
  for (const auto& p : parts) {
    const auto& n = dynamic_cast<const Numbers&>(*p);
    all.insert(all.end(), n.values.begin(), n.values.end());
  }
  return std::make_shared<Numbers>(std::move(all));
}

void EventLog::add(Event e) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(std::move(e));
  }
  changed_.notify_all();
}

std::vector<Event> EventLog::events() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return events_;
}

long EventLog::index_of(const std::string& stage, int64_t step, bool begin) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < events_.size(); ++i)
    if (events_[i].stage == stage && events_[i].step == step && events_[i].begin == begin)
      return static_cast<long>(i);
  return -1;
}

bool EventLog::wait_for_begin(const std::string& stage, int64_t step, double timeout_s) const {
  std::unique_lock<std::mutex> lock(mutex_);
  return changed_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] {
    for (const auto& e : events_)
      if (e.stage == stage && e.step == step && e.begin) return true;
    return false;
  });
}

void register_toy_loop(StageRegistry& registry, std::shared_ptr<ToyLoop> loop) {
  auto add = [&](dsl::StageTypeSchema schema, ToyStage::Body body) {
    const std::string name = schema.name;
    registry.add(StageType{std::move(schema), [loop, name, body] {
                             return std::make_unique<ToyStage>(name, loop, body);
                           }});
  };
  add(type_schema("toy.data", {}, {port("prompts", "PromptBatch")}),
      [loop](const StepInput& in, Event&, double&) {
        return one("prompts", std::make_shared<Numbers>(prompts_of(in.step, loop->rows, loop->seed)));
      });
  add(type_schema("toy.rollout",
                  {port("prompts", "PromptBatch"), port("weights", "WeightsUpdate", true)},
                  {port("samples", "RolloutBatch")}),
      [](const StepInput& in, Event& e, double&) {
        double w = 0;  // the initial policy
        if (in.has("weights")) {
          auto weights = in.get<Param>("weights");
          w = weights->value;
          e.weights_step = weights->made_at_step;
        }
        std::vector<double> samples;
        for (double p : in.get<Numbers>("prompts")->values) samples.push_back(sample_of(p, w));
        return one("samples", std::make_shared<Numbers>(std::move(samples)));
      });
  add(type_schema("toy.reward", {port("samples", "RolloutBatch")}, {port("scores", "Scores")}),
      [](const StepInput& in, Event&, double&) {
        auto scores = map_values(in.get<Numbers>("samples")->values, reward_of);
        StepOutput out;
        out.metrics["critic/rewards/mean"] = mean(scores);
        out.ports["scores"] = std::make_shared<Numbers>(std::move(scores));
        return out;
      });
  add(type_schema("toy.reference", {port("samples", "RolloutBatch")},
                  {port("ref_logprobs", "RefLogprobs")}),
      [](const StepInput& in, Event&, double&) {
        return one("ref_logprobs", std::make_shared<Numbers>(
                                       map_values(in.get<Numbers>("samples")->values, reference_of)));
      });
  add(type_schema("toy.learner",
                  {port("samples", "RolloutBatch"), port("scores", "Scores"),
                   port("ref_logprobs", "RefLogprobs")},
                  {port("params", "PolicyUpdate")}),
      [](const StepInput& in, Event&, double& w) {
        w = learner_update(w, in.get<Numbers>("scores")->values,
                           in.get<Numbers>("ref_logprobs")->values);
        StepOutput out = one("params", std::make_shared<Param>(w, in.step));
        out.metrics["actor/param"] = w;
        out.weight_version = in.step + 1;  // number of updates applied
        return out;
      });
  add(type_schema("toy.weight_sync", {port("params", "PolicyUpdate")},
                  {port("weights", "WeightsUpdate")}),
      [](const StepInput& in, Event&, double&) {
        auto p = in.get<Param>("params");
        return one("weights", std::make_shared<Param>(p->value, p->made_at_step));
      });
}

dsl::PipelineSpec toy_loop_spec(int64_t steps, int64_t staleness) {
  return pipeline(
      {stage("data", "toy.data"),
       stage("rollout", "toy.rollout",
             {input("prompts", "data.prompts"), input("weights", "weight_sync.weights", staleness)}),
       stage("reward", "toy.reward", {input("samples", "rollout.samples")}),
       stage("reference", "toy.reference", {input("samples", "rollout.samples")}),
       stage("learner", "toy.learner",
             {input("samples", "rollout.samples"), input("scores", "reward.scores"),
              input("ref_logprobs", "reference.ref_logprobs")}),
       stage("weight_sync", "toy.weight_sync", {input("params", "learner")})},
      steps);
}

ToyExpectation simulate_toy_loop(int64_t steps, int64_t staleness, int rows, uint32_t seed) {
  ToyExpectation x;
  double w = 0;
  for (int64_t t = 0; t < steps; ++t) {
    const int64_t s = t - 1 - staleness;  // the weights rollout(t) uses
    const double w_used = s >= 0 ? x.param[s] : 0.0;
    x.weights_step.push_back(s >= 0 ? s : -1);
    std::vector<double> samples;
    for (double p : prompts_of(t, rows, seed)) samples.push_back(sample_of(p, w_used));
    const auto scores = map_values(samples, reward_of);
    w = learner_update(w, scores, map_values(samples, reference_of));
    x.param.push_back(w);
    x.reward_mean.push_back(mean(scores));
    x.samples.push_back(samples);
  }
  return x;
}

int live_toy_stages() { return live_stages.load(); }

}  // namespace qerl::runtime::testing
