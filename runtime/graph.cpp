// Graph::build — resolve every declared input to an edge, check ports and
// their payload types (C++ types, see runtime/plugin_api.hpp), and reject
// cycles of forward edges. All problems are collected first so that a user
// fixes them in one pass.
#include "runtime/graph.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>

#include "dsl/pipeline_spec.hpp"
#include "dsl/suggest.hpp"
#include "runtime/payload.hpp"
#include "runtime/stage_registry.hpp"

namespace qerl::runtime {
namespace {

std::vector<std::string> port_names(const std::vector<dsl::PortSpec>& ports) {
  std::vector<std::string> names;
  for (const auto& p : ports) names.push_back(p.name);
  return names;
}

const dsl::PortSpec* find_port(const std::vector<dsl::PortSpec>& ports, const std::string& name) {
  for (const auto& p : ports)
    if (p.name == name) return &p;
  return nullptr;
}

std::string joined(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

// Whether an edge between these ports carries one payload type. Ports
// declared with port<T>() compare C++ types; ports declared by name only
// (test doubles) compare names, and never match a typed port.
bool same_payload(const dsl::PortSpec& out, const dsl::PortSpec& in) {
  if (out.payload_type && in.payload_type) return *out.payload_type == *in.payload_type;
  return !out.payload_type && !in.payload_type && out.type == in.type;
}

// How `port`'s type reads in a mismatch with `other`: its short name, or the
// qualified C++ name where two different types share a short name.
std::string payload_text(const dsl::PortSpec& port, const dsl::PortSpec& other) {
  if (!port.payload_type) return port.type + (other.payload_type ? " (declared by name only, not with port<T>())" : "");
  if (other.payload_type && port.type == other.type) return demangled_name(*port.payload_type);
  return port.type;
}


// Strongly connected components of the forward edges (Tarjan); returns the
// component id of every node.
std::vector<int> forward_components(size_t n, const std::vector<Edge>& edges) {
  std::vector<std::vector<int>> next(n);
  for (const auto& e : edges)
    if (!e.is_back_edge()) next[e.producer].push_back(e.consumer);
  std::vector<int> index(n, -1), low(n, 0), comp(n, -1), stack;
  std::vector<bool> on_stack(n, false);
  int counter = 0, components = 0;
  std::function<void(int)> visit = [&](int v) {
    index[v] = low[v] = counter++;
    stack.push_back(v);
    on_stack[v] = true;
    for (int w : next[v]) {
      if (index[w] < 0) {
        visit(w);
        low[v] = std::min(low[v], low[w]);
      } else if (on_stack[w]) {
        low[v] = std::min(low[v], index[w]);
      }
    }
    if (low[v] == index[v]) {
      int w;
      do {
        w = stack.back();
        stack.pop_back();
        on_stack[w] = false;
        comp[w] = components;
      } while (w != v);
      ++components;
    }
  };
  for (size_t v = 0; v < n; ++v)
    if (index[v] < 0) visit(static_cast<int>(v));
  return comp;
}

// The shortest forward cycle through `start` within its component, as edge
// indices (breadth-first, so the reported cycle is deterministic and short).
std::vector<int> cycle_through(int start, const std::vector<int>& comp,
                               const std::vector<Edge>& edges) {
  std::map<int, int> via;  // node -> edge that reached it
  std::queue<int> frontier;
  frontier.push(start);
  while (!frontier.empty()) {
    const int v = frontier.front();
    frontier.pop();
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = edges[i];
      if (e.is_back_edge() || e.producer != v || comp[e.consumer] != comp[start]) continue;
      if (e.consumer == start) {
        std::vector<int> path{static_cast<int>(i)};
        for (int at = v; at != start; at = edges[via[at]].producer) path.push_back(via[at]);
        std::reverse(path.begin(), path.end());
        return path;
      }
      if (!via.count(e.consumer)) {
        via[e.consumer] = static_cast<int>(i);
        frontier.push(e.consumer);
      }
    }
  }
  return {};
}

}  // namespace

bool Node::is_source(const std::vector<Edge>& edges) const {
  return std::none_of(inputs.begin(), inputs.end(),
                      [&](int e) { return !edges[e].is_back_edge(); });
}

std::optional<int> Graph::find(const std::string& stage) const {
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].name == stage) return static_cast<int>(i);
  return std::nullopt;
}

int64_t Graph::max_staleness() const {
  int64_t k = 0;
  for (const auto& e : edges_)
    if (e.staleness) k = std::max(k, *e.staleness);
  return k;
}

Graph Graph::build(const dsl::PipelineSpec& spec, const StageRegistry& registry) {
  Graph g;
  dsl::DiagnosticList problems;
  std::vector<bool> known(spec.stages.size(), false);
  std::vector<std::string> stage_names;
  for (const auto& s : spec.stages) stage_names.push_back(s.name);

  for (const auto& s : spec.stages) {
    Node node;
    node.name = s.name;
    node.type = s.uses;
    node.replicas = s.replicas;
    node.pos = s.pos;
    if (const StageType* type = registry.find(s.uses)) {
      node.schema = type->schema;
      known[g.nodes_.size()] = true;
    } else {
      problems.add(s.pos, "stages." + s.name + ".uses",
                   "unknown stage type '" + s.uses + "'" + dsl::did_you_mean(s.uses, registry.names()));
    }
    g.nodes_.push_back(std::move(node));
  }

  for (size_t c = 0; c < spec.stages.size(); ++c) {
    const dsl::StageSpec& stage = spec.stages[c];
    Node& consumer = g.nodes_[c];
    for (const dsl::InputSpec& in : stage.inputs) {
      const std::string key = "stages." + stage.name + ".inputs." + in.port;
      const std::string from = in.from_stage + (in.from_port.empty() ? "" : "." + in.from_port);
      const dsl::PortSpec* in_port = nullptr;
      if (known[c]) {
        in_port = find_port(consumer.schema.inputs, in.port);
        if (!in_port) {
          problems.add(in.pos, key,
                       "stage type '" + consumer.type + "' has no input port '" + in.port + "'" +
                           dsl::did_you_mean(in.port, port_names(consumer.schema.inputs)));
        }
      }
      if (in.staleness && *in.staleness < 0)
        problems.add(in.pos, key + ".staleness",
                     "staleness must be >= 0, got " + std::to_string(*in.staleness));
      const std::optional<int> p = g.find(in.from_stage);
      if (!p) {
        problems.add(in.pos, key,
                     "unknown stage '" + in.from_stage + "' in \"" + from + "\"" +
                         dsl::did_you_mean(in.from_stage, stage_names));
        continue;
      }
      if (!known[*p]) continue;  // its unknown type is reported already
      const Node& producer = g.nodes_[*p];
      std::string out_name = in.from_port;
      if (out_name.empty()) {
        const auto outs = port_names(producer.schema.outputs);
        if (outs.size() != 1) {
          problems.add(in.pos, key,
                       outs.empty() ? "stage '" + producer.name + "' (type '" + producer.type +
                                          "') has no output ports"
                                    : "stage '" + producer.name + "' has several output ports (" +
                                          joined(outs, ", ") + "): name one, e.g. \"" +
                                          producer.name + "." + outs.front() + "\"");
          continue;
        }
        out_name = outs.front();
      }
      const dsl::PortSpec* out_port = find_port(producer.schema.outputs, out_name);
      if (!out_port) {
        problems.add(in.pos, key,
                     "stage '" + producer.name + "' (type '" + producer.type +
                         "') has no output port '" + out_name + "'" +
                         dsl::did_you_mean(out_name, port_names(producer.schema.outputs)));
        continue;
      }
      if (!in_port) continue;
      if (!same_payload(*out_port, *in_port)) {
        problems.add(in.pos, key,
                     "input port '" + in.port + "' expects " + payload_text(*in_port, *out_port) + ", '" +
                         producer.name + "." + out_name + "' produces " + payload_text(*out_port, *in_port));
        continue;
      }
      Edge e;
      e.producer = *p;
      e.producer_port = out_name;
      e.consumer = static_cast<int>(c);
      e.consumer_port = in.port;
      e.type = in_port->type;
      e.staleness = in.staleness;
      e.pos = in.pos;
      g.edges_.push_back(std::move(e));
    }
    if (!known[c]) continue;
    for (const dsl::PortSpec& port : consumer.schema.inputs) {
      const bool connected = std::any_of(stage.inputs.begin(), stage.inputs.end(),
                                         [&](const dsl::InputSpec& in) { return in.port == port.name; });
      if (!connected && !port.optional)
        problems.add(stage.pos, "stages." + stage.name + ".inputs",
                     "input port '" + port.name + "' (" + port.type + ") of stage '" + stage.name +
                         "' is not connected");
    }
  }

  // Edge lists of each node, in declaration order.
  for (size_t i = 0; i < g.edges_.size(); ++i) {
    g.nodes_[g.edges_[i].producer].outputs.push_back(static_cast<int>(i));
    g.nodes_[g.edges_[i].consumer].inputs.push_back(static_cast<int>(i));
  }

  const std::vector<int> comp = forward_components(g.nodes_.size(), g.edges_);
  std::vector<bool> reported(g.nodes_.size(), false);
  for (size_t v = 0; v < g.nodes_.size(); ++v) {
    if (reported[comp[v]]) continue;
    const std::vector<int> cycle = cycle_through(static_cast<int>(v), comp, g.edges_);
    if (cycle.empty()) continue;
    reported[comp[v]] = true;
    std::string names = g.nodes_[v].name;
    for (int e : cycle) names += " -> " + g.nodes_[g.edges_[e].consumer].name;
    const Edge& closing = g.edges_[cycle.back()];
    problems.add(closing.pos,
                 "stages." + g.nodes_[closing.consumer].name + ".inputs." + closing.consumer_port,
                 "cycle without a back-edge: " + names +
                     "; give one input on it a staleness, e.g. " + closing.consumer_port +
                     " = { from = \"" + g.nodes_[closing.producer].name + "." +
                     closing.producer_port + "\", staleness = 0 }");
  }
  problems.throw_if_any();

  // Kahn's algorithm over forward edges, lowest declaration index first.
  std::vector<int> indegree(g.nodes_.size(), 0);
  for (const auto& e : g.edges_)
    if (!e.is_back_edge()) ++indegree[e.consumer];
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (size_t v = 0; v < g.nodes_.size(); ++v)
    if (indegree[v] == 0) ready.push(static_cast<int>(v));
  while (!ready.empty()) {
    const int v = ready.top();
    ready.pop();
    g.order_.push_back(v);
    for (int e : g.nodes_[v].outputs)
      if (!g.edges_[e].is_back_edge() && --indegree[g.edges_[e].consumer] == 0)
        ready.push(g.edges_[e].consumer);
  }
  return g;
}

}  // namespace qerl::runtime
