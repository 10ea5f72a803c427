// Bulk tensors beside the message (issue 17, "GPU tensors as a descriptor
// whose bytes move over NCCL"): a payload that crosses processes carries a
// Ticket and each tensor's dtype and shape; the bytes move over a Link
// between the two processes (NCCL point-to-point between GPUs:
// nccl_link.cpp). One link per destination process, made on its first
// transfer (the ticket then carries the link's rendezvous bytes).
//
// Order: a link moves transfers in the order they were started. CAF decodes
// arriving messages on several threads, so a receiver takes transfers by
// the ticket's sequence number (a decode waits for its turn, up to a
// timeout), never in arrival order. Tickets come from the network: every
// field is checked, and a failed transfer breaks its link for good (later
// tickets fail at once, naming the first error).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/wire.hpp"

namespace qerl::actors::bulk {

// Which link and which of its transfers; bootstrap on the first (seq 0) only.
struct Ticket {
  std::string link_kind;  // "nccl"
  uint64_t link = 0;
  uint64_t seq = 0;
  std::vector<uint8_t> bootstrap;
};

void write_ticket(runtime::wire::Writer& w, const Ticket& ticket);
Ticket read_ticket(runtime::wire::Reader& r);

struct TensorSpec {
  torch::ScalarType dtype = torch::kFloat;
  std::vector<int64_t> sizes;
};

// The byte mover between the two ends of a link (rank 0 sends, 1 receives).
class Link {
 public:
  virtual ~Link();
  // Moves `tensors` to the peer's receive(), after `ready` (from
  // LinkKind::ready_marker) is reached; returns once they may be freed.
  virtual void send(const std::vector<torch::Tensor>& tensors, const std::shared_ptr<void>& ready) = 0;
  // Fills `into` (the shapes and dtypes sent); returns once they hold the bytes.
  virtual void receive(const std::vector<torch::Tensor>& into) = 0;
};

class LinkKind {
 public:
  virtual ~LinkKind();
  virtual std::string name() const = 0;
  // Rendezvous bytes for a new link (made by the sending end).
  virtual std::vector<uint8_t> bootstrap() = 0;
  // Joins the link as `rank` on `device`; may block until the peer joins.
  virtual std::unique_ptr<Link> join(const std::vector<uint8_t>& bootstrap, int rank, torch::Device device) = 0;
  // Called where the transfer starts (the encoding thread): marks the point
  // of the producer's work that the bytes must wait for (null: none).
  virtual std::shared_ptr<void> ready_marker(const std::vector<torch::Tensor>& tensors) = 0;
  // Where received tensors are allocated.
  virtual torch::Device receive_device() const = 0;
};

// NCCL point-to-point between GPUs (nccl_link.cpp); null in builds without NCCL.
std::shared_ptr<LinkKind> nccl_link_kind();

// This process's link kind: NCCL in builds that have it, else none;
// tests install their own. available() = one is set.
void set_link_kind(std::shared_ptr<LinkKind> kind);
std::shared_ptr<LinkKind> link_kind();
bool available();

// NCCL's receive device: the first CUDA device a consuming stage notes
// (rollout and eval do in setup()).
void note_device(torch::Device device);
std::optional<torch::Device> noted_device();

// Producer side, where the tensors are final (weight_sync's run()): the
// link kind's marker of the work they wait for; null without a link kind.
std::shared_ptr<void> mark_ready(const std::vector<torch::Tensor>& tensors);

// Sender side: starts moving `tensors` to process `destination` on that
// link's thread, after `ready` (mark_ready's), and returns the ticket for
// the message at once. Throws qerl::Error when no link kind is set or the
// link has failed.
Ticket send(const std::string& destination, std::vector<torch::Tensor> tensors, std::shared_ptr<void> ready);

// Receiver side: waits for the ticket's turn on its link (at most
// receive_timeout_s() for the transfer before it), allocates `specs` on the
// link kind's device and fills them. Throws qerl::Error naming the link and
// transfer on any problem; a transfer that never came breaks the link, so
// the tickets after it fail at once.
std::vector<torch::Tensor> receive(const Ticket& ticket, const std::vector<TensorSpec>& specs);
void set_receive_timeout_s(double seconds);  // default 120
double receive_timeout_s();

}  // namespace qerl::actors::bulk
