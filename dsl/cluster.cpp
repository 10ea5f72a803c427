// Worker addresses and the process of each stage; see dsl/cluster.hpp.
#include "dsl/cluster.hpp"

#include <algorithm>

#include "dsl/pipeline_spec.hpp"

namespace qerl::dsl {

std::optional<WorkerAddress> parse_worker_address(const std::string& text, std::string* problem) {
  auto fail = [&](std::string why) -> std::optional<WorkerAddress> {
    if (problem) *problem = std::move(why);
    return std::nullopt;
  };
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return fail("expected \"host:port\", got \"" + text + "\"");
  std::string host = text.substr(0, colon);
  const std::string port_text = text.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || host.find_first_of(" \t/[]") != std::string::npos)
    return fail("expected \"host:port\", got host \"" + host + "\" in \"" + text + "\"");
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return fail("expected a port number 1..65535 after ':', got \"" + port_text + "\" in \"" + text + "\"");
  const int port = std::stoi(port_text);
  if (port < 1 || port > 65535)
    return fail("expected a port number 1..65535 after ':', got " + port_text + " in \"" + text + "\"");
  return WorkerAddress{host, port};
}

bool local_workers(const ClusterSpec& cluster) {
  return cluster.workers.size() == 1 && cluster.workers.front() == "local";
}

int64_t worker_count(const PipelineSpec& spec) {
  if (spec.cluster.workers.empty()) return 0;
  if (!local_workers(spec.cluster)) return static_cast<int64_t>(spec.cluster.workers.size());
  int64_t n = 0;
  for (const StageSpec& s : spec.stages) n = std::max(n, s.worker);
  return n;
}

std::vector<std::string> stages_of_worker(const PipelineSpec& spec, int64_t index) {
  std::vector<std::string> out;
  for (const StageSpec& s : spec.stages)
    if (s.worker == index) out.push_back(s.name);
  return out;
}

}  // namespace qerl::dsl
