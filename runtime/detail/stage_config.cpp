// stage_config(): one stage replica's actor configuration, the same in the
// coordinator and in a worker process.
#include "runtime/detail/stage_config.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "dsl/pipeline_spec.hpp"
#include "runtime/checkpoint.hpp"
#include "runtime/graph.hpp"
#include "runtime/placement.hpp"

namespace qerl::runtime::detail {

std::string replica_label(const ReplicaPlacement& r) {
  return "stage '" + r.stage + "' (replica " + std::to_string(r.replica) + ")";
}

StageActorConfig stage_config(const ProcessRun& run, const ReplicaPlacement& r, caf::actor driver) {
  const Graph& graph = *run.graph;
  const dsl::PipelineSpec& spec = *run.spec;
  const Node& node = graph.node(r.node);
  StageActorConfig c;
  c.node = r.node;
  c.label = replica_label(r);
  c.type = run.registry->find(node.type);
  c.context.pipeline = &spec;
  c.context.stage = spec.find_stage(node.name);
  c.context.replica = r.replica;
  c.context.replicas = r.replicas;
  c.context.slots = r.slots;
  c.context.devices = r.devices;
  c.context.out_dir = run.out_dir;
  c.context.start_step = run.start_step;
  for (int e : node.outputs) {
    const Edge& edge = graph.edges()[e];
    if (edge.staleness) c.context.back_edge_history = std::max(c.context.back_edge_history, *edge.staleness + 1);
  }
  c.context.stop_flag = run.stop_flag;
  c.context.logger = std::make_shared<spdlog::logger>(r.label(), run.log_sinks.begin(), run.log_sinks.end());
  c.context.logger->set_level(spdlog::default_logger()->level());
  for (int e : node.inputs) {
    const Edge& edge = graph.edges()[e];
    const Node& producer = graph.node(edge.producer);
    c.inputs.push_back(InputDecl{edge.consumer_port, producer.name + "." + edge.producer_port,
                                 static_cast<int>(producer.replicas), edge.staleness});
  }
  c.total_steps = spec.run.steps;
  c.checkpoint_every = spec.run.checkpoint_every;
  c.name = node.name;
  c.state_name = stage_state_name(node.name, r.replica);
  c.resume_from = run.resume_from;
  c.is_source = node.is_source(graph.edges());
  c.lease = run.lease;
  c.driver = std::move(driver);
  return c;
}

}  // namespace qerl::runtime::detail
