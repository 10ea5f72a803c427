// The worker process: one published actor that performs the handshake,
// rebuilds the run from the coordinator's resolved pipeline and spawns the
// stage actors asked of it; the process ends with it (std::_Exit, so a stage
// thread blocked in run() never holds the exit up).
#include "runtime/worker.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "dsl/cluster.hpp"
#include "dsl/loader.hpp"
#include "dsl/pipeline_spec.hpp"
#include "runtime/cluster_secret.hpp"
#include "runtime/detail/stage_config.hpp"
#include "runtime/detail/worker_protocol.hpp"
#include "runtime/graph.hpp"
#include "runtime/placement.hpp"
#include "runtime/stage_registry.hpp"

namespace qerl::runtime {
namespace {

using namespace detail;

// The run as this worker rebuilt it; the stage contexts point into it.
struct WorkerRun {
  dsl::PipelineSpec spec;
  std::unique_ptr<Graph> graph;
  std::unique_ptr<Placement> placement;
  ProcessRun process;
  int index = 0;
};

struct WorkerState {
  caf::actor coordinator;  // set once a coordinator is accepted
  std::shared_ptr<WorkerRun> run;
  std::vector<caf::actor> stages;
  static inline const char* name = "qerl.worker";
};

using Self = caf::stateful_actor<WorkerState>;

std::shared_ptr<WorkerRun> build_run(const Hello& hello, const WorkerOptions& options) {
  auto run = std::make_shared<WorkerRun>();
  StageRegistry& registry = options.registry_for(hello.plugins);
  run->spec = dsl::load_pipeline_text(hello.pipeline_text, "resolved.toml (from the coordinator)", {},
                                      registry.schema());
  run->graph = std::make_unique<Graph>(Graph::build(run->spec, registry));
  run->placement = std::make_unique<Placement>(place(run->spec, *run->graph, registry, options.physical_gpus));
  run->index = hello.worker_index;
  ProcessRun& p = run->process;
  p.spec = &run->spec;
  p.graph = run->graph.get();
  p.placement = run->placement.get();
  p.registry = &registry;
  p.out_dir = hello.out_dir;
  p.start_step = hello.start_step;
  p.resume_from = hello.resume_from;
  p.log_sinks = spdlog::default_logger()->sinks();
  return run;
}

// Stops this worker's stage actors (the coordinator is gone or done).
void stop_stages(Self* self) {
  auto& st = self->state;
  if (st.run) st.run->process.stop_flag->store(true), st.run->process.lease->close();
  for (const caf::actor& a : st.stages) self->send_exit(a, caf::exit_reason::user_shutdown);
  st.stages.clear();
}

caf::behavior worker_actor(Self* self, WorkerOptions options, std::shared_ptr<int> status) {
  const WorkerIdentity identity{options.build_id, secret_proof(options.secret), options.pipeline_version};
  self->set_default_handler([](caf::scheduled_actor*, caf::message_view& msg) -> caf::result<caf::message> {
    spdlog::warn("qerl worker: ignored an unexpected message {}", caf::to_string(msg.copy_content_to_message()).substr(0, 120));
    return caf::make_error(caf::sec::unexpected_message);
  });
  auto from_coordinator = [self] {
    return self->state.coordinator &&
           self->current_sender() == caf::actor_cast<caf::strong_actor_ptr>(self->state.coordinator);
  };
  return {
      [=](hello_atom, Hello& hello) -> std::string {
        auto& st = self->state;
        auto sender = caf::actor_cast<caf::actor>(self->current_sender());
        if (st.coordinator) {
          spdlog::warn("qerl worker: refused a second coordinator (this worker serves one run)");
          return "this worker already serves a coordinator";
        }
        std::string verdict = check_hello(hello, identity);
        if (verdict.empty() && !sender) verdict = "anonymous hello";
        if (verdict.empty()) {
          try {
            st.run = build_run(hello, options);
          } catch (const std::exception& e) {
            verdict = std::string("cannot build the pipeline it sent: ") + e.what();
          }
        }
        if (!verdict.empty()) {
          spdlog::error("qerl worker: refused a coordinator: {}", verdict);
          return verdict;
        }
        st.coordinator = sender;
        self->monitor(sender);
        std::string stages;
        for (const auto& s : dsl::stages_of_worker(st.run->spec, hello.worker_index))
          stages += (stages.empty() ? "" : ", ") + s;
        spdlog::info("qerl worker {}: accepted the coordinator of run '{}' (stages {})", hello.worker_index,
                     st.run->spec.run.name, stages);
        return "";
      },
      [=](spawn_atom, int node, int replica, caf::actor driver) -> caf::result<caf::actor> {
        auto& st = self->state;
        if (!from_coordinator()) return caf::make_error(caf::sec::unexpected_message);
        try {
          const ReplicaPlacement& r = st.run->placement->of(node, replica);
          if (st.run->spec.find_stage(r.stage)->worker != st.run->index)
            return caf::make_error(caf::sec::invalid_argument, "stage '" + r.stage + "' is not placed on this worker");
          caf::actor a = self->system().spawn<caf::detached>(stage_actor, stage_config(st.run->process, r, driver));
          st.stages.push_back(a);
          return a;
        } catch (const std::exception& e) {
          return caf::make_error(caf::sec::invalid_argument, std::string(e.what()));
        }
      },
      [=](bye_atom) {
        if (!from_coordinator()) return;
        stop_stages(self);
        self->quit();
      },
      [=](caf::down_msg& down) {
        auto& st = self->state;
        if (down.source != st.coordinator.address()) return;
        spdlog::error("qerl worker: lost the coordinator ({}); stopping", caf::to_string(down.reason));
        *status = 1;
        stop_stages(self);
        self->quit();
      },
  };
}

}  // namespace

int run_worker(const WorkerOptions& options) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  load_network(cfg);
  add_message_types(cfg);
  auto* system = new caf::actor_system(cfg);  // never destroyed: the process ends with _Exit
  auto status = std::make_shared<int>(0);
  caf::actor worker = system->spawn(worker_actor, options, status);
  auto port = system->middleman().publish(worker, static_cast<uint16_t>(options.port), options.bind.c_str(),
                                          /*reuse_addr=*/false);
  if (!port) {
    std::fprintf(stderr, "qerl-run --worker: error: cannot listen on %s:%d: %s\n", options.bind.c_str(),
                 options.port, system->render(port.error()).c_str());
    std::fflush(nullptr);
    std::_Exit(1);
  }
  if (options.port_fd >= 0) {
    const std::string line = std::to_string(*port) + "\n";
    (void)!::write(options.port_fd, line.data(), line.size());
    ::close(options.port_fd);
  }
  spdlog::info("qerl worker listening on {}:{} (pid {}, {})", options.bind, *port, ::getpid(), options.build_id);
  {
    caf::scoped_actor self{*system};
    self->monitor(worker);
    self->receive([](caf::down_msg&) {});
  }
  spdlog::default_logger()->flush();
  std::fflush(nullptr);
  std::_Exit(*status);
}

}  // namespace qerl::runtime
