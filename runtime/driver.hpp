// The driver runs a validated, placed pipeline: it spawns one actor per
// stage replica, wires them along the graph's edges, ticks the source stages
// (at most 1 + max staleness steps ahead of the oldest unfinished step),
// writes one metrics.jsonl line per finished step, completes a checkpoint
// after the steps that run.checkpoint_every asks for (runtime/checkpoint.hpp),
// and supervises: the first stage failure, an actor that dies, or a stall
// longer than the no-progress timeout stops every actor and ends the run
// with one error line. A run can resume from a checkpoint (start_step).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/step_record.hpp"

namespace spdlog::sinks {
class sink;
}

namespace qerl::dsl {
struct PipelineSpec;
}

namespace qerl::runtime {

class Graph;
struct Placement;
class StageRegistry;

// Where worker process N listens (issue 17): RunOptions::workers[N - 1].
struct WorkerEndpoint {
  std::string host;
  int port = 0;
  std::string label;  // "127.0.0.1:40123" (+ " pid 123" for local workers), for error lines
};

struct RunOptions {
  // metrics.jsonl and checkpoints/ go here (created if missing); "" = no
  // files (and no checkpoints). Before the first step the driver deletes
  // checkpoints/*.tmp and every checkpoint with more than start_step steps.
  std::string out_dir;
  // Resuming: the first step to run, and the complete checkpoint folder
  // whose manifest says start_step steps completed (each replica's
  // load_state() gets its folder in it). metrics.jsonl is then appended to:
  // the caller trims it first (keep_metrics_before). resume_from may be
  // empty (stages restart from their initial state at start_step).
  int64_t start_step = 0;
  std::string resume_from;
  // Called on the driver's thread after each finished step, in step order,
  // after its metrics line is written and before its checkpoint (if any) is
  // completed.
  std::function<void(const StepRecord&)> on_step;
  // Stop when no stage replica finished setup or a step for this long; 0 = never.
  double no_progress_timeout_s = 3600;
  // How long stopping actors may take (a stage blocked in run() cannot be
  // interrupted); after that they are abandoned and the process should exit.
  double shutdown_timeout_s = 30;
  // When set and it becomes true (qerl-run's SIGINT/SIGTERM handler), the
  // driver stops every stage as after a failure, within about 0.1 s plus
  // what a stage needs to leave run(), and reports result.interrupted.
  const std::atomic<bool>* interrupt = nullptr;
  // Worker processes: stages with `worker = N` run in workers[N - 1],
  // reached over CAF's network layer; empty = every stage in this process.
  // The secret proves to each worker that this coordinator runs the job;
  // pipeline_text (resolved.toml) is what the workers build their stages from.
  std::vector<WorkerEndpoint> workers;
  std::string cluster_secret;
  std::string pipeline_text;
  std::string pipeline_version;  // detail::pipeline_hash of it without run.out_dir
  double connect_timeout_s = 60;  // per worker: connect, handshake, spawn its stages
  // Sinks of the stage loggers; empty = those of spdlog's default logger.
  std::vector<std::shared_ptr<spdlog::sinks::sink>> log_sinks;
};

struct RunResult {
  bool ok = false;
  int64_t steps_completed = 0;  // counted from step 0 (start_step included)
  // When !ok, one line: "stage 'reward' (replica 0) failed at step 3: <what>".
  std::string error;
  // A stage thread could not be stopped and still runs (it may use the spec):
  // the caller must end the process (std::_Exit) instead of returning.
  bool abandoned = false;
  // Stopped through RunOptions::interrupt (error then says at which step).
  bool interrupted = false;
};

// Throws qerl::Error (one line naming the stages and their types) when a
// stage's type is unknown or declared without an implementation (no
// factory). qerl-run calls it after --dry-run's checks, before spawning.
void check_implemented(const dsl::PipelineSpec& spec, const StageRegistry& registry);

// Runs steps options.start_step .. spec.run.steps-1. `spec`, `graph`, `placement` and `registry`
// must outlive the call. Failures are reported in the result, not thrown.
RunResult run_pipeline(const dsl::PipelineSpec& spec, const Graph& graph, const Placement& placement,
                       const StageRegistry& registry, const RunOptions& options);

}  // namespace qerl::runtime
