// The stage actor (driver-private): one CAF actor per stage replica, run
// detached because Stage::run blocks for seconds to minutes. It buffers the
// messages of each input port by step, fires the stage for step t once all
// forward inputs of t and every back-edge input of t-1-staleness are there,
// holds the device lease while the stage computes, saves the stage's state
// when a checkpoint follows the step (before reporting it), and sends the
// outputs to the consumers' replicas. Includes CAF: only driver.cpp and
// stage_actor.cpp include this header.
//
// Protocol:
//   driver -> stage   (wire_atom, Wiring)          where outputs go; then setup()
//                                                  (and load_state() when resuming)
//   stage  -> driver  (ready_atom, int node, int replica)   setup() finished
//   driver -> stage   (tick_atom, int64_t step)    source stages only: step may start
//   stage  -> stage   (port_atom, PortMessage)     one producer replica's output for a step
//                                                  (resuming: a back-edge producer first re-sends
//                                                  the steps before start_step its consumers need,
//                                                  a null payload where it has none)
//   stage  -> driver  (fired_atom, FiringReport)   a step finished on this replica
//                                                  (its state saved, if due)
//   stage  -> driver  (failed_atom, std::string)   setup or a step threw: one line
//   driver -> stage   exit (user_shutdown)         the run is over
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/save_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/detail/step_tracker.hpp"
#include "runtime/device_lease.hpp"
#include "runtime/stage.hpp"
#include "runtime/stage_registry.hpp"
#include "runtime/wire.hpp"

namespace qerl::runtime::detail {

using wire_atom = caf::atom_constant<caf::atom("wire")>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using port_atom = caf::atom_constant<caf::atom("port")>;
using fired_atom = caf::atom_constant<caf::atom("fired")>;
using failed_atom = caf::atom_constant<caf::atom("failed")>;

// One producer replica's output on one edge, for one step.
struct PortMessage {
  std::string port;  // the consumer's input port
  int producer_replica = 0;
  int64_t step = 0;
  int64_t weight_version = 0;
  PayloadPtr payload;  // null: the producer has no message for this step (resumed runs)
  // Sender side only (never on the wire): the consumer's process, when it
  // is another one (wire::destination() while the payload is encoded).
  std::string destination;
};

// CAF inspection of a PortMessage, for messages that leave the process: the
// payload travels as its wire encoding (runtime/wire.hpp; empty = null);
// bytes that do not decode become a CAF error naming the port and field.
// Inside one process CAF passes the message by reference and never calls this.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, PortMessage& x) {
  std::vector<uint8_t> bytes;
  auto save = caf::meta::save_callback([&]() -> caf::error {
    try {
      const wire::DestinationScope to(x.destination);
      if (x.payload) bytes = wire::encode_payload(*x.payload);
    } catch (const std::exception& e) {
      return caf::make_error(caf::sec::invalid_argument, std::string(e.what()));
    }
    return caf::none;
  });
  auto load = caf::meta::load_callback([&]() -> caf::error {
    try {
      x.payload = bytes.empty() ? nullptr
                                : wire::decode_payload(bytes.data(), bytes.size(),
                                                       "message for port '" + x.port.substr(0, 64) + "'");
    } catch (const std::exception& e) {
      return caf::make_error(caf::sec::invalid_argument, std::string(e.what()));
    }
    return caf::none;
  });
  return f(caf::meta::type_name("qerl.port_message"), x.port, x.producer_replica, x.step, x.weight_version, save,
           bytes, load);
}

// One outgoing edge: which output port goes to which consumer port, on
// every replica of the consumer (index = consumer replica).
struct Route {
  std::string producer_port;
  std::string consumer_port;
  std::vector<caf::actor> consumers;
  std::optional<int64_t> staleness;  // set = back-edge
};

struct Wiring {
  std::vector<Route> routes;
};

// CAF inspection of the driver's messages, so that they can reach a stage
// actor in a worker process (runtime/worker.hpp). Actor handles travel as
// CAF's (node, actor id) pairs; a staleness travels as -1 when unset.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Route& x) {
  int64_t staleness = -1;
  auto save = caf::meta::save_callback([&]() -> caf::error {
    staleness = x.staleness.value_or(-1);
    return caf::none;
  });
  auto load = caf::meta::load_callback([&]() -> caf::error {
    if (staleness < -1) return caf::make_error(caf::sec::invalid_argument, "route: negative staleness");
    x.staleness = staleness < 0 ? std::nullopt : std::optional<int64_t>(staleness);
    return caf::none;
  });
  return f(caf::meta::type_name("qerl.route"), x.producer_port, x.consumer_port, x.consumers, save, staleness,
           load);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Wiring& x) {
  return f(caf::meta::type_name("qerl.wiring"), x.routes);
}

// One input port of this stage.
struct InputDecl {
  std::string port;
  std::string from;  // "rollout.samples", for error messages
  int producer_replicas = 1;
  std::optional<int64_t> staleness;  // set = back-edge
};

struct StageActorConfig {
  int node = -1;
  std::string name;   // the stage's name, as in [stages.<name>]
  std::string label;  // "stage 'reward' (replica 0)", the prefix of error lines
  const StageType* type = nullptr;
  StageContext context;  // context.start_step: the first step to run
  std::vector<InputDecl> inputs;
  int64_t total_steps = 0;
  // Checkpoints: save into <out_dir>/checkpoints/step_<t+1>.tmp/<state_name>
  // after step t when checkpoint_due(t, checkpoint_every, total_steps).
  int64_t checkpoint_every = 0;  // 0 (or no out_dir) = never
  std::string state_name;        // "<stage>" or "<stage>.r<replica>"
  std::filesystem::path resume_from;  // a complete checkpoint; "" = fresh start
  bool is_source = false;
  std::shared_ptr<DeviceLease> lease;
  caf::actor driver;
};

// Messages of one input port that arrived for one step.
struct PendingStep {
  std::vector<PayloadPtr> parts;  // index = producer replica
  int received = 0;
  int64_t weight_version = 0;
};

struct StageActorState {
  StageActorConfig config;
  std::unique_ptr<Stage> stage;
  std::vector<std::map<int64_t, PendingStep>> buffers;  // parallel to config.inputs
  std::vector<Route> routes;
  int64_t next_step = 0;  // steps run in order, from context.start_step
  int64_t ticked = 0;     // source stages: steps < ticked may start
  bool set_up = false;
  bool failed = false;

  static inline const char* name = "qerl.stage";
};

caf::behavior stage_actor(caf::stateful_actor<StageActorState>* self, StageActorConfig config);

// Announces every message type of the driver/stage/worker protocol to a CAF
// system (needed before any of them crosses a process boundary).
void add_message_types(caf::actor_system_config& cfg);

// Loads CAF's network layer with heartbeats: a peer that sends nothing for
// network_timeout_s (a stopped or wedged process, a dead link) is dropped,
// which the other side sees as the loss of its actors.
inline constexpr double network_timeout_s = 15;
void load_network(caf::actor_system_config& cfg);

}  // namespace qerl::runtime::detail

namespace qerl::runtime {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, FiringReport& x) {
  return f(caf::meta::type_name("qerl.firing_report"), x.node, x.replica, x.step, x.wall_s, x.weight_version,
           x.metrics, x.started_unix_s);
}

}  // namespace qerl::runtime
