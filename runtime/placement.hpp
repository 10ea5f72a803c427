// Placement: which device each stage replica runs on. Stages name logical
// GPU slots (`gpus = [0, 1]`); [cluster] device maps slots to CUDA devices or,
// without a GPU, to the CPU. Replicas split a stage's slots evenly. Stage
// replicas that share a slot form a colocation group, which the driver
// time-slices; replicas on disjoint slots are disaggregated and run
// concurrently. Switching between the two is an edit of `gpus` lists only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qerl::dsl {
struct PipelineSpec;
}

namespace qerl::runtime {

class Graph;
class StageRegistry;

struct ReplicaPlacement {
  int node = -1;  // graph node index
  std::string stage;
  int replica = 0;
  int replicas = 1;
  std::vector<int64_t> slots;        // logical GPU slots; empty = the host CPU
  std::vector<std::string> devices;  // one per slot, "cuda:<i>" or "cpu"; {"cpu"} on the host
  int colocation_group = -1;         // index into Placement::groups; -1 = not colocated

  std::string label() const;  // "rollout" or "rollout[1]"
};

struct ColocationGroup {
  std::vector<int64_t> slots;  // the slots its members share (sorted)
  std::vector<int> members;    // indices into Placement::replicas
};

struct Placement {
  std::string device;  // resolved device kind of the slots: "cuda" or "cpu"
  std::vector<ReplicaPlacement> replicas;  // graph node order, then replica index
  std::vector<ColocationGroup> groups;
  std::vector<std::string> notices;  // lines for the user, e.g. the slots-on-CPU notice

  const ReplicaPlacement& of(int node, int replica) const;
  // Every stage replica -> its device(s), then the colocation groups.
  std::string to_text() const;
};

// `physical_gpus`: CUDA devices visible to this process (qerl-run probes
// LibTorch; tests pass a count). Throws dsl::PipelineError listing every
// problem: slot out of range for the devices / cluster.num_gpus, a stage
// type that needs a device but has `gpus = []`, replicas not dividing gpus.
Placement place(const dsl::PipelineSpec& spec, const Graph& graph, const StageRegistry& registry,
                int physical_gpus);

}  // namespace qerl::runtime
