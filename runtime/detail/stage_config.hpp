// What a process needs to construct its stage actors: the run's spec, graph
// and placement plus the per-process pieces (device lease, stop flag, log
// sinks). The coordinator builds it from what it loaded; a worker from the
// resolved pipeline text the coordinator sent (runtime/worker.hpp), so both
// derive every stage's configuration the same way.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/detail/stage_actor.hpp"

namespace spdlog::sinks {
class sink;
}

namespace qerl::runtime {
class Graph;
struct Placement;
struct ReplicaPlacement;
}  // namespace qerl::runtime

namespace qerl::runtime::detail {

struct ProcessRun {
  const dsl::PipelineSpec* spec = nullptr;
  const Graph* graph = nullptr;
  const Placement* placement = nullptr;
  const StageRegistry* registry = nullptr;
  std::string out_dir;
  int64_t start_step = 0;
  std::string resume_from;
  std::shared_ptr<DeviceLease> lease = std::make_shared<DeviceLease>();  // one per process
  std::shared_ptr<std::atomic<bool>> stop_flag = std::make_shared<std::atomic<bool>>(false);
  std::vector<std::shared_ptr<spdlog::sinks::sink>> log_sinks;
};

// "stage 'reward' (replica 0)"
std::string replica_label(const ReplicaPlacement& r);

// The configuration of replica `r`'s actor, reporting to `driver`.
StageActorConfig stage_config(const ProcessRun& run, const ReplicaPlacement& r, caf::actor driver);

}  // namespace qerl::runtime::detail
