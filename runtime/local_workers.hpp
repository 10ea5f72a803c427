// cluster.workers = "local": qerl-run starts its own worker processes on
// this host (fork + exec of `<this executable> --worker --listen 0`), each
// reporting its ephemeral port through a pipe and receiving the run's
// secret through its environment (never its command line). They are killed
// when this object goes (and die with the coordinator: PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "runtime/driver.hpp"

namespace qerl::runtime {

class LocalWorkers {
 public:
  // Starts `count` workers of `executable` (qerl-run), listening on
  // 127.0.0.1; `extra_args` go to each (e.g. --log-level). Throws
  // qerl::Error when one cannot start or does not report a port in time.
  LocalWorkers(const std::string& executable, int count, const std::string& secret,
               const std::vector<std::string>& extra_args);
  ~LocalWorkers();
  LocalWorkers(const LocalWorkers&) = delete;
  LocalWorkers& operator=(const LocalWorkers&) = delete;

  const std::vector<WorkerEndpoint>& endpoints() const { return endpoints_; }
  const std::vector<pid_t>& pids() const { return pids_; }

 private:
  void stop_all();
  std::vector<pid_t> pids_;
  std::vector<WorkerEndpoint> endpoints_;
};

}  // namespace qerl::runtime
