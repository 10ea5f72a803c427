// Payload: the polymorphic base of what flows along a graph edge. Concrete
// payloads (prompt batches, rollouts holding torch tensors, weight updates)
// derive from it in the layers above, so the runtime never includes torch.
// Replicated stages use two hooks: shard() splits a payload for N consumer
// replicas, gather() reassembles the parts of N producer replicas. A port
// declares the C++ type it carries (payload_type<T>()), and the graph
// checks those types edge by edge before anything runs.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <typeindex>
#include <typeinfo>
#include <vector>

namespace qerl::runtime {

class Payload;
using PayloadPtr = std::shared_ptr<const Payload>;

class Payload : public std::enable_shared_from_this<Payload> {
 public:
  virtual ~Payload();

  // The part that consumer replica `index` of `count` receives. The default
  // broadcasts the whole payload (every replica sees all of it); a batch
  // overrides this to hand each replica its slice of rows.
  virtual PayloadPtr shard(int index, int count) const;

  // Reassembles the parts that producer replicas 0..n-1 sent for one step
  // (`parts[0]` is this object). The default cannot: it throws qerl::Error
  // naming the payload type, because silently keeping one part would drop
  // the other replicas' work.
  virtual PayloadPtr gather(const std::vector<PayloadPtr>& parts) const;

  // A readable type name for error messages (demangled C++ type by default).
  virtual std::string type_name() const;
};

// The C++ type as written in source: "qerl::actors::RolloutBatch".
std::string demangled_name(std::type_index type);
// The same without namespaces ("RolloutBatch"), for docs and --explain;
// template types keep their full name.
std::string short_type_name(std::type_index type);

// The identity a port records for payload type T. std::type_index compares
// equal across shared objects (libstdc++ compares the mangled names of
// types with external linkage), so a plugin's port<RolloutBatch> matches
// qerl-run's.
template <class T>
std::type_index payload_type() {
  static_assert(std::is_base_of_v<Payload, T>, "a port carries a class derived from qerl::runtime::Payload");
  return std::type_index(typeid(T));
}

// What the runtime does on an edge, step by step (count == 1 skips the hook).
// Throw qerl::Error with the payload type when a hook fails or returns null.
PayloadPtr gather_parts(const std::vector<PayloadPtr>& parts);
PayloadPtr shard_for(const PayloadPtr& whole, int index, int count);

}  // namespace qerl::runtime
