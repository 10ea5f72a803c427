// Stage: the interface every pipeline stage implements, built-in or plugin.
// The runtime wraps each stage replica in an actor that calls setup() once
// (then load_state() when the run resumes from a checkpoint), then run()
// once per step with the messages of that step, and save_state() after the
// steps that a checkpoint follows; a stage owns its state (model copy, KV
// cache, optimizer) and never talks to other stages directly. Throwing from
// any of them stops the run with the stage's name and step (prefer
// qerl::Error with a one-line message).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "runtime/payload.hpp"

namespace spdlog {
class logger;
}

namespace qerl::dsl {
struct PipelineSpec;
struct StageSpec;
}  // namespace qerl::dsl

namespace qerl::runtime {

// What a stage replica knows about its place in the run. The pointers stay
// valid for the whole run (they point into the caller's PipelineSpec).
struct StageContext {
  const dsl::PipelineSpec* pipeline = nullptr;
  const dsl::StageSpec* stage = nullptr;  // this stage's [stages.<name>] table
  int replica = 0;                        // 0 .. replicas-1
  int replicas = 1;
  std::vector<int64_t> slots;             // logical GPU slots of this replica; empty = host CPU
  std::vector<std::string> devices;       // one per slot: "cuda:0" or "cpu"; {"cpu"} on the host
  std::shared_ptr<spdlog::logger> logger;  // named "<stage>" or "<stage>[<replica>]"
  std::string out_dir;                    // the run folder ("" = none)
  // The first step this run executes: 0, or the checkpoint's steps_completed
  // when resuming (load_state() then follows setup()).
  int64_t start_step = 0;
  // How many of its latest steps' outputs the back-edge consumers of this
  // stage may still need after a checkpoint: 1 + the largest staleness of
  // the back-edges leaving it (0 = none). See Stage::restored_outputs().
  int64_t back_edge_history = 0;
  std::shared_ptr<const std::atomic<bool>> stop_flag;  // set when the run is being stopped

  // Long computations may poll this and return early; the result is ignored.
  bool stop_requested() const { return stop_flag && stop_flag->load(); }
};

// The messages of one step. A back-edge port is absent while its producer
// has no message for step - 1 - staleness: that step is < 0 (the stage's
// initial state applies) or, in a resumed run, < start_step and the
// producer's restored_outputs() did not supply it. An unconnected optional
// port is always absent.
struct StepInput {
  int64_t step = 0;
  int64_t weight_version = 0;  // max over the inputs' versions (0 with no inputs)
  std::map<std::string, PayloadPtr> ports;

  bool has(const std::string& port) const { return ports.count(port) > 0; }
  // The payload on `port`, cast to T; throws qerl::Error when absent or of another type.
  template <class T>
  std::shared_ptr<const T> get(const std::string& port) const;
};

// What one step produced: one payload per connected output port, metrics
// for metrics.jsonl (verl names, e.g. "critic/rewards/mean"), and the
// weight version of the outputs when this stage changes it (learner).
struct StepOutput {
  std::map<std::string, PayloadPtr> ports;
  std::map<std::string, double> metrics;
  std::optional<int64_t> weight_version;  // unset = max of the inputs' versions
};

// An output of a step before the checkpoint, rebuilt from saved state so a
// resumed run's back-edge consumers get what the uninterrupted run sent.
struct RestoredOutput {
  int64_t step = 0;
  int64_t weight_version = 0;
  std::map<std::string, PayloadPtr> ports;
};

class Stage {
 public:
  virtual ~Stage();
  // Called once, on the stage's own thread, before the first step (load the
  // model here). The context outlives the stage.
  virtual void setup(const StageContext& context);
  virtual StepOutput run(const StepInput& input) = 0;

  // Checkpoints (run.checkpoint_every = N > 0): called on the stage's own
  // thread right after run() of step t returned, when (t + 1) % N == 0 or t
  // is the last step, before the driver hears of step t and before its
  // outputs are sent. Write everything needed to continue at step t + 1
  // into `dir` (<out_dir>/checkpoints/step_<t+1>.tmp/<stage>, or
  // <stage>.r<replica> for replicas > 0; it exists and is empty). Files
  // need not be written atomically: the checkpoint becomes valid only when
  // the driver renames the whole folder after every replica saved.
  // Default: nothing to save.
  virtual void save_state(const std::filesystem::path& dir);
  // Resuming: called once right after setup(), with this replica's folder
  // in the checkpoint (it exists; empty when the stage saved nothing).
  // context.start_step is the first step that run() will see. Default:
  // nothing to load.
  virtual void load_state(const std::filesystem::path& dir);
  // Resuming, after load_state(): the outputs this stage sent at steps
  // start_step - context.back_edge_history .. start_step - 1, as far as its
  // state holds them. They are re-sent on back-edges only (forward
  // consumers ran those steps before the checkpoint); a step left out is
  // an absent port for the consumer. A stage that feeds a back-edge keeps
  // its last back_edge_history outputs in its checkpoint for this.
  // Default: none.
  virtual std::vector<RestoredOutput> restored_outputs();
};

template <class T>
std::shared_ptr<const T> StepInput::get(const std::string& port) const {
  auto it = ports.find(port);
  if (it == ports.end() || !it->second)
    throw Error("input port '" + port + "' has no message at step " + std::to_string(step));
  auto typed = std::dynamic_pointer_cast<const T>(it->second);
  if (!typed)
    throw Error("input port '" + port + "' carries " + it->second->type_name() +
                ", not the expected payload type");
  return typed;
}

}  // namespace qerl::runtime
