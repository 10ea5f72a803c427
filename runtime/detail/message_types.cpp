// add_message_types(): the protocol's payload types by their wire names, so
// that a CAF system can deserialise them when they arrive from another
// process (coordinator or worker).
#include <caf/io/middleman.hpp>

#include <chrono>

#include "runtime/detail/stage_actor.hpp"
#include "runtime/detail/worker_protocol.hpp"

namespace qerl::runtime::detail {

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<PortMessage>("qerl.port_message");
  cfg.add_message_type<Wiring>("qerl.wiring");
  cfg.add_message_type<FiringReport>("qerl.firing_report");
  cfg.add_message_type<Hello>("qerl.hello");
}

void load_network(caf::actor_system_config& cfg) {
  cfg.load<caf::io::middleman>();
  cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::seconds(1)});
  cfg.set("middleman.connection-timeout",
          caf::timespan{std::chrono::milliseconds(static_cast<int64_t>(network_timeout_s * 1000))});
}

}  // namespace qerl::runtime::detail
