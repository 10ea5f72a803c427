// The handshake checks of runtime/detail/worker_protocol.hpp.
#include "runtime/detail/worker_protocol.hpp"

#include <cstdio>

#include "runtime/cluster_secret.hpp"

namespace qerl::runtime::detail {

std::string pipeline_hash(const std::string& pipeline_text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : pipeline_text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string check_hello(const Hello& hello, const WorkerIdentity& self) {
  // The secret first: a stranger learns nothing about this worker's build.
  if (!equal_in_constant_time(hello.secret_proof, self.secret_proof))
    return "the coordinator does not hold this run's cluster secret (QERL_CLUSTER_SECRET / "
           "QERL_CLUSTER_SECRET_FILE differ)";
  if (hello.build_id != self.build_id)
    return "different qerl builds: the coordinator runs '" + hello.build_id + "', this worker runs '" +
           self.build_id + "'";
  if (pipeline_hash(hello.pipeline_text) != hello.pipeline_hash)
    return "the pipeline text does not match its hash " + hello.pipeline_hash + " (damaged in transit)";
  if (!self.pipeline_version.empty() && hello.pipeline_version != self.pipeline_version)
    return "different pipelines: the coordinator runs pipeline " + hello.pipeline_version +
           ", this worker was started for pipeline " + self.pipeline_version;
  return "";
}

}  // namespace qerl::runtime::detail
