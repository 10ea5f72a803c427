// Readable renderings of a Graph: the listing that --dry-run prints and the
// Graphviz file written next to it (back-edges dashed, labelled with their
// staleness, so the RL loop's async edge stands out).
#include <sstream>

#include "runtime/graph.hpp"

namespace qerl::runtime {
namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string padded(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

}  // namespace

std::string Graph::to_text() const {
  std::ostringstream out;
  for (int v : order_) {
    const Node& n = nodes_[v];
    out << n.name << "  (" << n.type << ")";
    if (n.replicas != 1) out << "  x" << n.replicas << " replicas";
    if (n.inputs.empty()) out << "  source";
    out << "\n";
    for (int e : n.inputs) {
      const Edge& edge = edges_[e];
      out << "  " << padded(edge.consumer_port, 14) << "<- "
          << padded(nodes_[edge.producer].name + "." + edge.producer_port, 24) << edge.type;
      if (edge.staleness) out << "  (back-edge, staleness " << *edge.staleness << ")";
      out << "\n";
    }
  }
  return out.str();
}

std::string Graph::to_dot() const {
  std::ostringstream out;
  out << "digraph pipeline {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n";
  for (int v : order_) {
    const Node& n = nodes_[v];
    std::string label = n.name + "\\n(" + n.type + ")";
    if (n.replicas != 1) label += "\\nx" + std::to_string(n.replicas);
    out << "  " << quoted(n.name) << " [label=\"" << label << "\"];\n";
  }
  for (const Edge& e : edges_) {
    std::string label = e.producer_port == e.consumer_port
                            ? e.producer_port
                            : e.producer_port + " / " + e.consumer_port;
    out << "  " << quoted(nodes_[e.producer].name) << " -> " << quoted(nodes_[e.consumer].name)
        << " [label=";
    if (e.staleness) {
      out << quoted(label + " (staleness " + std::to_string(*e.staleness) + ")")
          << ", style=dashed, constraint=false";
    } else {
      out << quoted(label);
    }
    out << "];\n";
  }
  out << "}\n";
  return out.str();
}

}  // namespace qerl::runtime
