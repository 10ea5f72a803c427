// The stage actor's firing rule, input assembly (gather producer replicas'
// parts, then take this replica's shard), output checks and state saving.
// Every exception of a stage becomes one line to the driver; the actor then
// idles until the driver stops it.
#include "runtime/detail/stage_actor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "runtime/checkpoint.hpp"

namespace qerl::runtime::detail {
namespace {

using Self = caf::stateful_actor<StageActorState>;

// The consumer's process as text when it is not this one (PortMessage::destination).
std::string destination_of(Self* self, const caf::actor& consumer) {
  return consumer.node() == self->node() ? std::string() : caf::to_string(consumer.node());
}

// The driver's error is one line: a multi-line what() is joined with "; ".
void report_failure(Self* self, std::string what) {
  auto& st = self->state;
  st.failed = true;
  while (!what.empty() && what.back() == '\n') what.pop_back();
  for (size_t at = what.find('\n'); at != std::string::npos; at = what.find('\n', at))
    what.replace(at, 1, "; ");
  self->send(st.config.driver, failed_atom::value, st.config.label + " " + what);
}

// Runs `fn`, turning any exception into a failure line "<label> <where>: <what>".
template <class Fn>
bool guarded(Self* self, const std::string& where, Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const std::exception& e) {
    report_failure(self, where + ": " + e.what());
  } catch (...) {
    report_failure(self, where + ": unknown exception");
  }
  return false;
}

// The step whose message a port needs when the stage fires step t.
int64_t needed_step(const InputDecl& in, int64_t t) { return in.staleness ? t - 1 - *in.staleness : t; }

// A back-edge message of a step before step 0 never exists: the port is
// absent. (Resuming, the producer re-sends each earlier step a back-edge
// still needs, with a null payload where its state holds none.)
bool absent(int64_t needed) { return needed < 0; }

bool any_null(const std::vector<PayloadPtr>& parts) {
  return std::any_of(parts.begin(), parts.end(), [](const PayloadPtr& p) { return !p; });
}

bool can_fire(const StageActorState& st, int64_t t) {
  if (st.config.is_source && t >= st.ticked) return false;
  for (size_t i = 0; i < st.config.inputs.size(); ++i) {
    const InputDecl& in = st.config.inputs[i];
    const int64_t s = needed_step(in, t);
    if (absent(s)) continue;  // a back-edge before its first message
    auto it = st.buffers[i].find(s);
    if (it == st.buffers[i].end() || it->second.received < in.producer_replicas) return false;
  }
  return true;
}

// Takes the inputs of step t out of the buffers: gathered, then sharded.
StepInput assemble(StageActorState& st, int64_t t) {
  StepInput input;
  input.step = t;
  const StageContext& ctx = st.config.context;
  for (size_t i = 0; i < st.config.inputs.size(); ++i) {
    const InputDecl& in = st.config.inputs[i];
    const int64_t s = needed_step(in, t);
    if (absent(s)) continue;
    auto node = st.buffers[i].extract(s);
    if (any_null(node.mapped().parts)) continue;  // resumed: the producer had no message
    try {
      const PayloadPtr whole = gather_parts(node.mapped().parts);
      input.ports[in.port] = shard_for(whole, ctx.replica, ctx.replicas);
    } catch (const std::exception& e) {
      throw Error("input '" + in.port + "' from '" + in.from + "': " + e.what());
    }
    input.weight_version = std::max(input.weight_version, node.mapped().weight_version);
  }
  return input;
}

// Every connected output port must be produced; undeclared ports are a bug.
void check_outputs(const StageActorState& st, const StepOutput& out) {
  const auto& declared = st.config.type->schema.outputs;
  for (const auto& [port, payload] : out.ports) {
    const auto spec = std::find_if(declared.begin(), declared.end(),
                                   [&](const dsl::PortSpec& p) { return p.name == port; });
    if (spec == declared.end())
      throw Error("it produced port '" + port + "', which stage type '" +
                  st.config.type->schema.name + "' does not declare");
    // A typed port carries exactly its declared type: consumers were connected on that promise.
    if (payload && spec->payload_type && std::type_index(typeid(*payload)) != *spec->payload_type)
      throw Error("it produced a " + demangled_name(std::type_index(typeid(*payload))) + " on output port '" +
                  port + "', which is declared to carry " + demangled_name(*spec->payload_type));
  }
  for (const Route& r : st.routes) {
    auto it = out.ports.find(r.producer_port);
    if (it == out.ports.end() || !it->second)
      throw Error("it produced no message on output port '" + r.producer_port + "'");
  }
}

bool checkpoint_follows(const StageActorState& st, int64_t t) {
  return !st.config.context.out_dir.empty() &&
         checkpoint_due(t, st.config.checkpoint_every, st.config.total_steps);
}

// Saves the stage's state after step t into a fresh folder of the partial
// checkpoint, holding the device lease (the state may live on the GPU).
bool save_after(Self* self, int64_t t) {
  auto& st = self->state;
  LeaseGuard lease(*st.config.lease, st.config.context.slots);
  if (!lease.held()) return false;
  return guarded(self, "failed saving its state after step " + std::to_string(t), [&] {
    const auto dir = partial_checkpoint_dir(st.config.context.out_dir, t + 1) / st.config.state_name;
    std::filesystem::remove_all(dir);  // a leftover of an earlier attempt
    std::filesystem::create_directories(dir);
    st.stage->save_state(dir);
  });
}

// Fires step t; false when the step failed or the run is stopping.
bool fire(Self* self, int64_t t) {
  auto& st = self->state;
  const std::string at = "failed at step " + std::to_string(t);
  StepInput input;
  if (!guarded(self, at, [&] { input = assemble(st, t); })) return false;

  StepOutput out;
  double wall_s = 0, started_unix_s = 0;
  {
    LeaseGuard lease(*st.config.lease, st.config.context.slots);
    if (!lease.held()) return false;
    // --log-level debug: each stage's start and end of each step (the pattern has no logger name).
    st.config.context.logger->debug("{} step {} start", st.config.context.logger->name(), t);
    const auto start = std::chrono::steady_clock::now();
    started_unix_s = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (!guarded(self, at, [&] { out = st.stage->run(input); })) return false;
    wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  if (st.config.context.stop_requested()) return false;
  if (!guarded(self, at, [&] { check_outputs(st, out); })) return false;
  // The state is on disk before the driver hears of the step: once every
  // replica reported step t, the checkpoint after t only lacks its manifest.
  if (checkpoint_follows(st, t)) {
    const auto saving = std::chrono::steady_clock::now();
    if (!save_after(self, t) || st.config.context.stop_requested()) return false;
    // Outside the stage's own seconds: summaries tell it from the runtime's overhead.
    out.metrics["checkpoint_s/" + st.config.name] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - saving).count();
  }

  const int64_t version = out.weight_version.value_or(input.weight_version);
  const int replica = st.config.context.replica;
  // The driver hears of this step before any consumer can act on it, so a
  // consumer's failure never overtakes the report of a finished step.
  FiringReport report{st.config.node, replica, t, wall_s, version, std::move(out.metrics), started_unix_s};
  self->send(st.config.driver, fired_atom::value, std::move(report));
  for (const Route& r : st.routes)
    for (const caf::actor& consumer : r.consumers)
      self->send(consumer, port_atom::value,
                 PortMessage{r.consumer_port, replica, t, version, out.ports.at(r.producer_port),
                             destination_of(self, consumer)});
  st.config.context.logger->debug("{} step {} end ({:.3f}s)", st.config.context.logger->name(), t, wall_s);
  return true;
}

void try_fire(Self* self) {
  auto& st = self->state;
  while (st.set_up && !st.failed && st.next_step < st.config.total_steps &&
         can_fire(st, st.next_step)) {
    if (!fire(self, st.next_step)) return;
    ++st.next_step;
  }
}

// Resuming: sends every back-edge consumer the producer's outputs of the
// steps before start_step that it still needs (t - 1 - staleness for t >=
// start_step), from the restored state, or null where that holds none.
bool resend_restored(Self* self) {
  auto& st = self->state;
  std::vector<RestoredOutput> restored;
  if (!guarded(self, "failed restoring its outputs before the checkpoint", [&] {
        restored = st.stage->restored_outputs();
      }))
    return false;
  const int64_t start = st.config.context.start_step;
  const int replica = st.config.context.replica;
  for (const Route& r : st.routes) {
    if (!r.staleness) continue;
    for (int64_t s = std::max<int64_t>(0, start - 1 - *r.staleness); s < start; ++s) {
      PortMessage msg{r.consumer_port, replica, s, 0, nullptr, {}};
      for (const RestoredOutput& out : restored) {
        auto it = out.ports.find(r.producer_port);
        if (out.step == s && it != out.ports.end()) msg.payload = it->second, msg.weight_version = out.weight_version;
      }
      for (const caf::actor& consumer : r.consumers) {
        msg.destination = destination_of(self, consumer);
        self->send(consumer, port_atom::value, msg);
      }
    }
  }
  return true;
}

void set_up(Self* self) {
  auto& st = self->state;
  const bool ok = guarded(self, "failed in setup", [&] {
    st.stage = st.config.type->make();
    if (!st.stage) throw Error("stage type '" + st.config.type->schema.name + "' made no stage");
    LeaseGuard lease(*st.config.lease, st.config.context.slots);
    if (!lease.held()) return;
    st.stage->setup(st.config.context);
  });
  if (!ok || st.config.context.stop_requested()) return;
  if (!st.config.resume_from.empty()) {
    const auto dir = st.config.resume_from / st.config.state_name;
    const bool loaded = guarded(self, "failed loading its state from '" + dir.string() + "'", [&] {
      std::filesystem::create_directories(dir);  // the stage saved nothing, or was added since
      LeaseGuard lease(*st.config.lease, st.config.context.slots);
      if (!lease.held()) return;
      st.stage->load_state(dir);
    });
    if (!loaded || st.config.context.stop_requested()) return;
  }
  if (st.config.context.start_step > 0 && !resend_restored(self)) return;
  st.set_up = true;
  self->send(st.config.driver, ready_atom::value, st.config.node, st.config.context.replica);
}

}  // namespace

caf::behavior stage_actor(Self* self, StageActorConfig config) {
  self->state.config = std::move(config);
  self->state.buffers.resize(self->state.config.inputs.size());
  self->state.next_step = self->state.config.context.start_step;
  self->state.ticked = self->state.config.context.start_step;
  // An exception outside guarded() (e.g. bad_alloc while buffering) still
  // ends as one line from the driver, not CAF's default printout.
  self->set_exception_handler([self](caf::scheduled_actor*, std::exception_ptr& eptr) -> caf::error {
    try {
      std::rethrow_exception(eptr);
    } catch (const std::exception& e) {
      report_failure(self, std::string("failed: ") + e.what());
    } catch (...) {
      report_failure(self, "failed: unknown exception");
    }
    return caf::exit_reason::user_shutdown;
  });
  return {
      [=](wire_atom, Wiring& wiring) {
        self->state.routes = std::move(wiring.routes);
        set_up(self);
        try_fire(self);
      },
      [=](tick_atom, int64_t step) {
        self->state.ticked = std::max(self->state.ticked, step + 1);
        try_fire(self);
      },
      [=](port_atom, PortMessage& msg) {
        auto& st = self->state;
        if (st.failed) return;
        for (size_t i = 0; i < st.config.inputs.size(); ++i) {
          if (st.config.inputs[i].port != msg.port) continue;
          PendingStep& pending = st.buffers[i][msg.step];
          pending.parts.resize(st.config.inputs[i].producer_replicas);
          if (!pending.parts.at(msg.producer_replica)) ++pending.received;
          pending.parts[msg.producer_replica] = std::move(msg.payload);
          pending.weight_version = std::max(pending.weight_version, msg.weight_version);
        }
        try_fire(self);
      },
  };
}

}  // namespace qerl::runtime::detail
