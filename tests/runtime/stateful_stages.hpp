// Test-only stages with state to checkpoint, for the save / resume tests:
// a source drawing from a seeded RNG (its state advances every step), an
// accumulator fed back its own totals over a back-edge of staleness 0
// (itself) and one of staleness 1 (through a pass-through relay), and a
// replicated sink keeping running sums. Each saves and loads its state as
// text; the accumulator checks every back-edge message against the totals
// it remembers, so a message of the wrong step, or one missing inside the
// run, fails the step.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "dsl/pipeline_spec.hpp"
#include "runtime/stage_registry.hpp"

namespace qerl::runtime::testing {

// Knobs shared by the stages of one run.
struct StatefulToys {
  int rows = 4;  // numbers per step (the sink's 2 replicas take 2 each)
  // Throw from run() / save_state() of this stage replica at this step (-1 = never).
  std::string fail_stage;
  int fail_replica = 0;
  int64_t fail_run_at = -1;
  int64_t fail_save_at = -1;
  std::atomic<int> saves{0};  // save_state() calls, all stages
  std::atomic<int> loads{0};  // load_state() calls, all stages
};

// ck.counter, ck.acc, ck.relay, ck.sink.
void register_stateful_toys(StageRegistry& registry, std::shared_ptr<StatefulToys> toys);

// counter -> acc -> relay, acc -> sink (2 replicas); acc.prev0 <- acc.total
// (staleness 0), acc.prev1 <- relay.out (staleness 1); run.seed = 7.
dsl::PipelineSpec stateful_spec(int64_t steps, int64_t checkpoint_every, int64_t keep_checkpoints = 0);

// The counter's saved state after `steps` steps, computed independently.
std::string counter_state_after(int64_t steps, int rows, uint32_t seed = 7);

}  // namespace qerl::runtime::testing
