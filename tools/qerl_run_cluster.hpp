// qerl-run's side of multi-process runs (issue 17): the worker flags
// (--worker --listen PORT [--bind ADDR]), the worker process itself, the
// coordinator's preparation of its workers (secret, local processes,
// endpoints) and the per-stage process lines of --dry-run. Kept apart from
// qerl_run.cpp so that file stays about single runs.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/driver.hpp"
#include "runtime/local_workers.hpp"

namespace qerl::dsl {
struct PipelineSpec;
class Schema;
}  // namespace qerl::dsl

namespace qerl::runtime {
struct Placement;
class StageRegistry;
}  // namespace qerl::runtime

namespace qerl::tools {

struct WorkerFlags {
  bool enabled = false;            // --worker
  int listen = -1;                 // --listen PORT (0 = ephemeral)
  std::string bind = "127.0.0.1";  // --bind ADDR
  int port_fd = -1;                // hidden: where a local worker reports its port
  std::string pretend_build;       // hidden, tests only: claim another build id
};

void add_worker_flags(CLI::App& app, WorkerFlags& flags);

// "# processes" and one line per stage: its process and device(s).
std::string process_plan(const dsl::PipelineSpec& spec, const runtime::Placement& placement);

// The pipeline's identity for the handshake: the hash of its resolved text
// with run.out_dir and cluster.workers left out (a worker given the same file computes it too).
std::string pipeline_version(const dsl::PipelineSpec& spec, const dsl::Schema& schema);

// Fills options.workers / cluster_secret / pipeline_text for a run with
// cluster.workers; starts the local workers when it says "local" (they live
// as long as the returned object). Throws qerl::Error (no secret, a worker
// that does not start).
std::unique_ptr<runtime::LocalWorkers> prepare_workers(const dsl::PipelineSpec& spec, const dsl::Schema& schema,
                                                       const std::string& log_level, runtime::RunOptions& options);

// `qerl-run --worker`: serves one coordinator, then ends the process.
int run_worker_process(const WorkerFlags& flags, const std::string& pipeline, const std::vector<std::string>& overrides,
                       int physical_gpus,
                       std::function<runtime::StageRegistry&(const std::vector<std::string>&)> registry_for);

}  // namespace qerl::tools
