// Payload: the polymorphic base of what flows along a graph edge. Concrete
// payloads (prompt batches, rollouts holding torch tensors, weight updates)
// derive from it in the layers above, so the runtime never includes torch.
// Replicated stages use two hooks: shard() splits a payload for N consumer
// replicas, gather() reassembles the parts of N producer replicas.
#pragma once

#include <memory>
#include <string>
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

// What the runtime does on an edge, step by step (count == 1 skips the hook).
// Throw qerl::Error with the payload type when a hook fails or returns null.
PayloadPtr gather_parts(const std::vector<PayloadPtr>& parts);
PayloadPtr shard_for(const PayloadPtr& whole, int index, int count);

}  // namespace qerl::runtime
