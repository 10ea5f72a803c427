// Graph: the dataflow of a pipeline. Stages are nodes; each declared input
// is an edge from a producer's output port to a consumer's input port. An
// edge with a staleness bound is a back-edge (it may close a cycle: rollout
// of step t reads the weights of step t-1-k). Building validates the whole
// graph and throws one dsl::PipelineError listing every problem.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dsl/diagnostic.hpp"
#include "dsl/schema.hpp"

namespace qerl::dsl {
struct PipelineSpec;
}

namespace qerl::runtime {

class StageRegistry;

struct Edge {
  int producer = -1;  // node index
  std::string producer_port;
  int consumer = -1;  // node index
  std::string consumer_port;
  std::string type;                  // readable payload type carried, e.g. "RolloutBatch"
  std::optional<int64_t> staleness;  // set = back-edge
  dsl::SourcePos pos;                // of the consumer's input declaration

  bool is_back_edge() const { return staleness.has_value(); }
};

struct Node {
  std::string name;  // stage name
  std::string type;  // stage type (`uses`)
  int64_t replicas = 1;
  dsl::StageTypeSchema schema;  // ports and keys of the type
  std::vector<int> inputs;      // edge indices, in declaration order
  std::vector<int> outputs;     // edge indices, in declaration order of the consumers
  dsl::SourcePos pos;

  // No forward inputs: the driver ticks it once per step.
  bool is_source(const std::vector<Edge>& edges) const;
};

class Graph {
 public:
  // Throws dsl::PipelineError with every problem found: unknown stage type
  // or producer (with "did you mean"), unknown or ambiguous port, ports
  // whose payload types (dsl::PortSpec::payload_type) differ, an
  // unconnected required input, a cycle of forward edges.
  static Graph build(const dsl::PipelineSpec& spec, const StageRegistry& registry);

  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<Edge>& edges() const { return edges_; }
  const Node& node(int index) const { return nodes_.at(index); }
  std::optional<int> find(const std::string& stage) const;

  // Node indices ordered so that every forward edge goes from an earlier to
  // a later node (ties keep declaration order).
  const std::vector<int>& topological_order() const { return order_; }
  // Largest staleness of any back-edge (0 when there is none).
  int64_t max_staleness() const;

  // One block per stage in topological order: type, replicas, inputs.
  std::string to_text() const;
  // Graphviz digraph; back-edges dashed and labelled with their staleness.
  std::string to_dot() const;

 private:
  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  std::vector<int> order_;
};

}  // namespace qerl::runtime
