// Test-only stages that mirror the RL loop with plain numbers instead of
// models: toy.data -> toy.rollout -> toy.reward / toy.reference ->
// toy.learner -> toy.weight_sync, and weights back to rollout. Every run()
// is logged (begin / end, step, weight version) in an EventLog, and a hook
// lets a test block or fail a stage at a chosen step. simulate_toy_loop()
// is the independent reference: the same math in one sequential loop.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dsl/pipeline_spec.hpp"
#include "runtime/stage.hpp"
#include "runtime/stage_registry.hpp"

namespace qerl::runtime::testing {

// A row batch of doubles: splits by rows, concatenates replica parts.
struct Numbers : Payload {
  std::vector<double> values;
  explicit Numbers(std::vector<double> v = {}) : values(std::move(v)) {}
  PayloadPtr shard(int index, int count) const override;
  PayloadPtr gather(const std::vector<PayloadPtr>& parts) const override;
};

// Policy parameters (learner -> weight_sync -> rollout). Not gatherable:
// the default Payload::gather applies.
struct Param : Payload {
  double value = 0;
  int64_t made_at_step = -1;  // the step whose learner update produced it
  Param(double v, int64_t step) : value(v), made_at_step(step) {}
};

struct Event {
  std::string stage;
  int replica = 0;
  int64_t step = 0;
  bool begin = true;
  int64_t weight_version = 0;  // StepInput::weight_version
  int64_t weights_step = -1;   // rollout: made_at_step of the weights it used (-1 = none)
  std::vector<double> seen;    // the values of the stage's first input port
};

class EventLog {
 public:
  void add(Event e);
  std::vector<Event> events() const;
  // Index in the log of the first matching event, or -1.
  long index_of(const std::string& stage, int64_t step, bool begin) const;
  // Waits until `stage` began `step`; false after `timeout_s`.
  bool wait_for_begin(const std::string& stage, int64_t step, double timeout_s) const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<Event> events_;
};

struct ToyLoop {
  std::shared_ptr<EventLog> log = std::make_shared<EventLog>();
  // Called inside run() after the begin event; may block or throw. Capture
  // `log`, not the ToyLoop itself (that would be a reference cycle).
  std::function<void(const std::string& stage, const StepInput&)> hook;
  int rows = 6;
  uint32_t seed = 1234;
};

// Adds the toy.* stage types to `registry`; the factories share `loop`.
void register_toy_loop(StageRegistry& registry, std::shared_ptr<ToyLoop> loop);

// data, rollout, reward, reference, learner, weight_sync; the weights edge
// rollout <- weight_sync has `staleness`; no gpus (host CPU).
dsl::PipelineSpec toy_loop_spec(int64_t steps, int64_t staleness);

struct ToyExpectation {
  std::vector<double> param;          // learner's parameter after each step
  std::vector<double> reward_mean;    // critic/rewards/mean of each step
  std::vector<int64_t> weights_step;  // rollout(t): step of the weights it used, -1 = initial
  std::vector<std::vector<double>> samples;  // rollout's output of each step
};
ToyExpectation simulate_toy_loop(int64_t steps, int64_t staleness, int rows, uint32_t seed);

// Number of toy stage objects alive (constructed - destroyed).
int live_toy_stages();

}  // namespace qerl::runtime::testing
