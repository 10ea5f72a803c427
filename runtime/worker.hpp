// The worker side of a multi-process run (issue 17): `qerl-run --worker
// --listen PORT` publishes one actor on PORT (loopback unless --bind says
// otherwise), accepts the first coordinator that passes the handshake
// (runtime/detail/worker_protocol.hpp: same build, the run's secret, and the
// same pipeline when the worker was given one), builds the graph and
// placement from the resolved pipeline it sent, and spawns the stage actors
// the coordinator asks for. It exits when the coordinator says bye or is
// lost; a client that is not a qerl coordinator is refused and logged.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace qerl::runtime {

class StageRegistry;

struct WorkerOptions {
  int port = 0;                      // 0 = an ephemeral port
  std::string bind = "127.0.0.1";    // never all interfaces unless asked
  int port_fd = -1;                  // >= 0: write the port number there (local workers)
  std::string secret;                // the run's cluster secret
  std::string build_id;              // normally runtime::build_id()
  std::string pipeline_version;      // "" = accept the coordinator's pipeline
  int physical_gpus = 0;             // CUDA devices visible to this process
  // The registry with the built-in stages and these plugins loaded.
  std::function<StageRegistry&(const std::vector<std::string>& plugins)> registry_for;
};

// Serves one coordinator; returns the process exit status (0 when the run
// ended normally, 1 when the coordinator was lost or listening failed).
int run_worker(const WorkerOptions& options);

}  // namespace qerl::runtime
