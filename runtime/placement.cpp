// place(): logical slots -> devices, replicas -> slot subsets, and the
// colocation groups (connected components of replicas sharing a slot).
#include "runtime/placement.hpp"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <stdexcept>

#include "dsl/diagnostic.hpp"
#include "dsl/pipeline_spec.hpp"
#include "runtime/graph.hpp"

namespace qerl::runtime {
namespace {


std::string slot_list(const std::vector<int64_t>& slots) {
  std::string out;
  for (size_t i = 0; i < slots.size(); ++i) out += (i ? "," : "") + std::to_string(slots[i]);
  return out;
}

// Union-find over replica indices.
int root(std::vector<int>& parent, int x) {
  while (parent[x] != x) x = parent[x] = parent[parent[x]];
  return x;
}

}  // namespace

std::string ReplicaPlacement::label() const {
  return replicas == 1 ? stage : stage + "[" + std::to_string(replica) + "]";
}

const ReplicaPlacement& Placement::of(int node, int replica) const {
  for (const auto& r : replicas)
    if (r.node == node && r.replica == replica) return r;
  throw std::out_of_range("no placement for node " + std::to_string(node) + " replica " +
                          std::to_string(replica));
}

Placement place(const dsl::PipelineSpec& spec, const Graph& graph, const StageRegistry& /*registry*/,
                int physical_gpus) {
  Placement plan;
  dsl::DiagnosticList problems;
  const dsl::SourcePos cluster_pos{spec.source_file, 0, 0};
  const dsl::DeviceKind want = spec.cluster.device;
  const bool on_cuda = want == dsl::DeviceKind::cuda || (want == dsl::DeviceKind::auto_detect && physical_gpus > 0);
  plan.device = on_cuda ? "cuda" : "cpu";
  const int64_t num_gpus = spec.cluster.num_gpus;
  if (on_cuda && num_gpus > physical_gpus)
    problems.add(cluster_pos, "cluster.num_gpus",
                 "cluster.num_gpus = " + std::to_string(num_gpus) + " but only " +
                     std::to_string(physical_gpus) + " CUDA device(s) are visible");

  std::set<int64_t> used_slots;
  for (size_t v = 0; v < graph.nodes().size(); ++v) {
    const Node& node = graph.node(static_cast<int>(v));
    const dsl::StageSpec* stage = spec.find_stage(node.name);
    const std::vector<int64_t> gpus = stage ? stage->gpus : std::vector<int64_t>{};
    const std::string key = "stages." + node.name + ".gpus";
    const dsl::SourcePos& gpus_pos = stage ? stage->pos_of("gpus") : node.pos;
    const int64_t replicas = node.replicas;
    bool ok = true;
    if (replicas < 1) {
      problems.add(stage ? stage->pos_of("replicas") : node.pos, "stages." + node.name + ".replicas",
                   "stage '" + node.name + "' needs replicas >= 1, got " + std::to_string(replicas));
      continue;
    }
    if (gpus.empty() && node.schema.needs_device) {
      problems.add(gpus_pos, key,
                   "stage '" + node.name + "' has no device: set gpus = [...] (stage type '" +
                       node.type + "' holds a model and cannot run on the host CPU)");
      ok = false;
    }
    for (size_t i = 0; i < gpus.size(); ++i) {
      const std::string at = "stage '" + node.name + "': gpus[" + std::to_string(i) + "] = " +
                             std::to_string(gpus[i]);
      if (gpus[i] < 0) {
        problems.add(gpus_pos, key, at + " is negative");
        ok = false;
      } else if (std::count(gpus.begin(), gpus.begin() + i, gpus[i]) > 0) {
        problems.add(gpus_pos, key, at + " is listed twice");
        ok = false;
      } else if (num_gpus > 0 && gpus[i] >= num_gpus) {
        problems.add(gpus_pos, key,
                     at + " is outside cluster.num_gpus = " + std::to_string(num_gpus) +
                         " (slots 0.." + std::to_string(num_gpus - 1) + ")");
        ok = false;
      } else if (on_cuda && gpus[i] >= physical_gpus) {
        problems.add(gpus_pos, key,
                     at + (physical_gpus == 0 ? std::string(", but no CUDA device is visible")
                                              : ", but only " + std::to_string(physical_gpus) +
                                                    " CUDA device(s) are visible (0.." +
                                                    std::to_string(physical_gpus - 1) + ")") +
                         " with cluster.device = \"" + enum_name(want) + "\"" +
                         (want == dsl::DeviceKind::auto_detect
                              ? "; set cluster.device = \"cpu\" to run slots on the CPU"
                              : ""));
        ok = false;
      }
    }
    if (!gpus.empty() && static_cast<int64_t>(gpus.size()) < replicas) {
      problems.add(gpus_pos, key,
                   "stage '" + node.name + "' has " + std::to_string(replicas) + " replicas but " +
                       std::to_string(gpus.size()) + " gpus; each replica needs at least one slot");
      ok = false;
    } else if (!gpus.empty() && static_cast<int64_t>(gpus.size()) % replicas != 0) {
      problems.add(gpus_pos, key,
                   "stage '" + node.name + "': " + std::to_string(gpus.size()) +
                       " gpus cannot be split evenly over " + std::to_string(replicas) +
                       " replicas (use a multiple of " + std::to_string(replicas) + ")");
      ok = false;
    }
    if (!ok) continue;
    const size_t per_replica = gpus.size() / replicas;
    for (int64_t r = 0; r < replicas; ++r) {
      ReplicaPlacement rp;
      rp.node = static_cast<int>(v);
      rp.stage = node.name;
      rp.replica = static_cast<int>(r);
      rp.replicas = static_cast<int>(replicas);
      rp.slots.assign(gpus.begin() + r * per_replica, gpus.begin() + (r + 1) * per_replica);
      for (int64_t slot : rp.slots) {
        rp.devices.push_back(on_cuda ? "cuda:" + std::to_string(slot) : "cpu");
        used_slots.insert(slot);
      }
      if (rp.slots.empty()) rp.devices = {"cpu"};
      plan.replicas.push_back(std::move(rp));
    }
  }
  problems.throw_if_any();

  if (want == dsl::DeviceKind::auto_detect && !on_cuda && !used_slots.empty()) {
    const size_t n = used_slots.size();
    plan.notices.push_back("no CUDA device: " + std::to_string(n) + " logical GPU slot" +
                           (n == 1 ? " runs" : "s run") + " on the CPU");
  }

  // Colocation: replicas sharing any slot, transitively.
  std::vector<int> parent(plan.replicas.size());
  std::iota(parent.begin(), parent.end(), 0);
  std::map<int64_t, int> first_on_slot;
  for (size_t i = 0; i < plan.replicas.size(); ++i)
    for (int64_t slot : plan.replicas[i].slots) {
      auto [it, fresh] = first_on_slot.emplace(slot, static_cast<int>(i));
      if (!fresh) parent[root(parent, static_cast<int>(i))] = root(parent, it->second);
    }
  std::map<int, std::vector<int>> components;
  for (size_t i = 0; i < plan.replicas.size(); ++i)
    if (!plan.replicas[i].slots.empty())
      components[root(parent, static_cast<int>(i))].push_back(static_cast<int>(i));
  for (auto& [root_index, members] : components) {
    if (members.size() < 2) continue;
    ColocationGroup group;
    std::set<int64_t> slots;
    for (int m : members) {
      slots.insert(plan.replicas[m].slots.begin(), plan.replicas[m].slots.end());
      plan.replicas[m].colocation_group = static_cast<int>(plan.groups.size());
    }
    group.slots.assign(slots.begin(), slots.end());
    group.members = members;
    plan.groups.push_back(std::move(group));
  }
  return plan;
}

std::string Placement::to_text() const {
  std::ostringstream out;
  out << "device: " << device << "\n";
  for (const auto& n : notices) out << "  note: " << n << "\n";
  size_t width = 8;
  for (const auto& r : replicas) width = std::max(width, r.label().size() + 2);
  for (const auto& r : replicas) {
    std::string label = r.label();
    out << "  " << label << std::string(width - label.size(), ' ');
    if (r.slots.empty()) {
      out << "host cpu";
    } else {
      out << (r.slots.size() == 1 ? "slot " : "slots ") << slot_list(r.slots) << " -> ";
      for (size_t i = 0; i < r.devices.size(); ++i) out << (i ? ", " : "") << r.devices[i];
    }
    if (r.colocation_group >= 0) out << "  (colocation group " << r.colocation_group << ")";
    out << "\n";
  }
  if (groups.empty()) {
    out << "colocation: none (every stage replica has its own slots: disaggregated)\n";
  } else {
    out << "colocation groups (time-sliced: one member runs on its slots at a time):\n";
    for (size_t g = 0; g < groups.size(); ++g) {
      out << "  group " << g << " on slot" << (groups[g].slots.size() == 1 ? " " : "s ")
          << slot_list(groups[g].slots) << ": ";
      for (size_t i = 0; i < groups[g].members.size(); ++i)
        out << (i ? ", " : "") << replicas[groups[g].members[i]].label();
      out << "\n";
    }
  }
  return out.str();
}

}  // namespace qerl::runtime
