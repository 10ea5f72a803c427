// The processes of a run (issue 17): `[cluster] workers` names worker
// processes ("local", or "host:port" of workers started with
// `qerl-run --worker`), and each stage's `worker = N` puts it in one (0 =
// the coordinator, qerl-run itself). The loader validates both (one line
// each, with file:line); the runtime asks these helpers which process a
// stage runs in and where that process listens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qerl::dsl {

struct PipelineSpec;
struct ClusterSpec;

struct WorkerAddress {
  std::string host;
  int port = 0;
};

// "host:port" (port 1..65535; host a name, IPv4, or [IPv6]); nullopt with
// `problem` set when it is not one.
std::optional<WorkerAddress> parse_worker_address(const std::string& text, std::string* problem);

// cluster.workers = "local".
bool local_workers(const ClusterSpec& cluster);
// How many worker processes the run has besides the coordinator: the
// largest `worker = N` of the stages (local), or the list's length.
int64_t worker_count(const PipelineSpec& spec);
// The stages of worker `index`, in declaration order.
std::vector<std::string> stages_of_worker(const PipelineSpec& spec, int64_t index);

}  // namespace qerl::dsl
