// The driver: a CAF scoped actor on the caller's thread that spawns and
// wires the stage actors, ticks sources under backpressure, turns firing
// reports into step records (each followed by its checkpoint, when due),
// and stops everything on the first failure, an unexpected actor exit or a
// stall. The actor system is abandoned (leaked)
// only when a stage stays blocked past the shutdown timeout.
#include "runtime/driver.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>

#include "dsl/cluster.hpp"
#include "dsl/pipeline_spec.hpp"
#include "runtime/build_id.hpp"
#include "runtime/cluster_secret.hpp"
#include "runtime/checkpoint.hpp"
#include "runtime/detail/stage_actor.hpp"
#include "runtime/detail/stage_config.hpp"
#include "runtime/detail/worker_protocol.hpp"
#include "runtime/detail/step_tracker.hpp"
#include "runtime/graph.hpp"
#include "runtime/metrics_sink.hpp"
#include "runtime/placement.hpp"
#include "runtime/stage_registry.hpp"

namespace qerl::runtime {
namespace {

using namespace detail;
using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::chrono::milliseconds to_ms(double seconds) {
  constexpr double forever_s = 10.0 * 365 * 24 * 3600;  // "no timeout"
  return std::chrono::milliseconds(static_cast<int64_t>((seconds > 0 ? seconds : forever_s) * 1000));
}

class Driver {
 public:
  Driver(const dsl::PipelineSpec& spec, const Graph& graph, const Placement& placement,
         const StageRegistry& registry, const RunOptions& options)
      : spec_(spec), graph_(graph), placement_(placement), registry_(registry), options_(options),
        tracker_(graph, placement, spec.run.steps, options.start_step),
        ticked_(options.start_step) {
    result_.steps_completed = options.start_step;
  }

  RunResult run();

 private:
  bool spawn_and_wire(caf::scoped_actor& self);  // false: result_.error says why
  bool connect_workers(caf::scoped_actor& self);
  caf::actor spawn_replica(caf::scoped_actor& self, const ReplicaPlacement& r);
  std::string worker_lost_line(int worker, const caf::error& reason) const;
  void tick_sources(caf::scoped_actor& self);
  void finish_steps();
  void complete_checkpoint(const StepRecord& record);
  void open_run_folder();
  void supervise(caf::scoped_actor& self);
  bool stop_all(caf::scoped_actor& self);  // false = some actor did not stop in time

  const dsl::PipelineSpec& spec_;
  const Graph& graph_;
  const Placement& placement_;
  const StageRegistry& registry_;
  const RunOptions& options_;
  StepTracker tracker_;
  std::unique_ptr<MetricsSink> sink_;
  ProcessRun run_;                                 // this process's stage replicas
  std::vector<caf::actor> workers_;                // worker N at index N - 1
  std::map<caf::actor_addr, int> worker_of_;       // stage actors and worker actors -> worker N (>= 1)
  std::shared_ptr<spdlog::logger> log_;            // the driver's own lines (checkpoints)
  std::map<int, std::vector<caf::actor>> actors_;  // node -> replicas
  std::map<caf::actor_addr, std::string> labels_;  // alive actors
  int64_t ticked_ = 0;                             // sources ticked for steps < ticked_
  clock_type::time_point start_ = clock_type::now();
  RunResult result_;
  bool output_failed_ = false;  // metrics.jsonl or a checkpoint could not be written: stop writing
};

// Connects to every worker, proves the run's secret and hands it the
// resolved pipeline (it refuses another build or pipeline with one line).
bool Driver::connect_workers(caf::scoped_actor& self) {
  const auto timeout = to_ms(options_.connect_timeout_s);
  Hello hello;
  hello.build_id = build_id();
  hello.secret_proof = secret_proof(options_.cluster_secret);
  hello.pipeline_text = options_.pipeline_text;
  hello.pipeline_hash = pipeline_hash(options_.pipeline_text);
  hello.pipeline_version = options_.pipeline_version;
  hello.plugins = spec_.plugins;
  hello.out_dir = options_.out_dir;
  hello.start_step = options_.start_step;
  hello.resume_from = options_.resume_from;
  for (size_t i = 0; i < options_.workers.size(); ++i) {
    const WorkerEndpoint& w = options_.workers[i];
    const std::string who = "worker " + std::to_string(i + 1) + " (" + w.label + ")";
    auto worker = self->system().middleman().remote_actor(w.host, static_cast<uint16_t>(w.port));
    if (!worker) {
      result_.error = "cannot reach " + who + ": " + self->system().render(worker.error());
      return false;
    }
    hello.worker_index = static_cast<int>(i + 1);
    std::string verdict;
    self->request(*worker, timeout, hello_atom::value, hello)
        .receive([&](std::string& v) { verdict = v.empty() ? "" : "refused by the worker: " + v; },
                 [&](caf::error& e) { verdict = "no handshake: " + self->system().render(e); });
    if (!verdict.empty()) {
      result_.error = who + " " + verdict;
      return false;
    }
    self->monitor(*worker);
    worker_of_[worker->address()] = static_cast<int>(i + 1);
    workers_.push_back(*worker);
    std::string stages;
    for (const std::string& s : dsl::stages_of_worker(spec_, static_cast<int64_t>(i + 1)))
      stages += (stages.empty() ? "" : ", ") + s;
    log_->info("{} accepted the run (stages {})", who, stages);
  }
  return true;
}

// A replica of a stage with worker = N > 0 is spawned by worker N, in its
// process; the rest here.
caf::actor Driver::spawn_replica(caf::scoped_actor& self, const ReplicaPlacement& r) {
  const int64_t worker = spec_.find_stage(r.stage)->worker;
  if (worker == 0) return self->system().spawn<caf::detached>(stage_actor, stage_config(run_, r, caf::actor{self}));
  caf::actor a;
  self->request(workers_.at(worker - 1), to_ms(options_.connect_timeout_s), spawn_atom::value, r.node, r.replica,
                caf::actor{self})
      .receive([&](caf::actor& spawned) { a = std::move(spawned); },
               [&](caf::error& e) {
                 result_.error = "worker " + std::to_string(worker) + " (" + options_.workers[worker - 1].label +
                                 ") could not start " + replica_label(r) + ": " + self->system().render(e);
               });
  if (a) worker_of_[a.address()] = static_cast<int>(worker);
  return a;
}

bool Driver::spawn_and_wire(caf::scoped_actor& self) {
  if (!options_.workers.empty() && !connect_workers(self)) return false;
  for (const ReplicaPlacement& r : placement_.replicas) {
    caf::actor a = spawn_replica(self, r);
    if (!a) return false;
    self->monitor(a);
    labels_[a.address()] = replica_label(r);
    actors_[r.node].push_back(a);
  }
  for (const ReplicaPlacement& r : placement_.replicas) {
    Wiring wiring;
    for (int e : graph_.node(r.node).outputs) {
      const Edge& edge = graph_.edges()[e];
      wiring.routes.push_back(Route{edge.producer_port, edge.consumer_port, actors_[edge.consumer], edge.staleness});
    }
    self->send(actors_[r.node][r.replica], wire_atom::value, std::move(wiring));
  }
  return true;
}

// "worker 1 (127.0.0.1:40123; stages reference, learner) was lost after
// finishing step 3: <reason>"
std::string Driver::worker_lost_line(int worker, const caf::error& reason) const {
  std::string stages;
  for (const std::string& s : dsl::stages_of_worker(spec_, worker)) stages += (stages.empty() ? "" : ", ") + s;
  const int64_t done = result_.steps_completed;
  return "worker " + std::to_string(worker) + " (" + options_.workers.at(worker - 1).label + "; stages " +
         stages + ") was lost " +
         (done > options_.start_step || done > 0 ? "after finishing step " + std::to_string(done - 1)
                                                 : std::string("before finishing any step")) +
         (reason == caf::exit_reason::remote_link_unreachable
              ? std::string(" (its connection closed or went silent for ") + fmt::format("{:g}", network_timeout_s) + " s)"
              : " (" + caf::to_string(reason) + ")");
}

// Backpressure: sources run at most 1 + max staleness steps ahead of the
// oldest unfinished step, so back-edge buffers stay bounded.
void Driver::tick_sources(caf::scoped_actor& self) {
  const int64_t limit = std::min(spec_.run.steps, tracker_.next() + 1 + graph_.max_staleness());
  for (; ticked_ < limit; ++ticked_)
    for (size_t v = 0; v < graph_.nodes().size(); ++v)
      if (graph_.node(static_cast<int>(v)).is_source(graph_.edges()))
        for (const caf::actor& a : actors_[static_cast<int>(v)])
          self->send(a, tick_atom::value, ticked_);
}

void Driver::finish_steps() {
  // Steps that finished are written even after a failure elsewhere.
  while (!output_failed_ && tracker_.next_complete()) {
    const double elapsed = std::chrono::duration<double>(clock_type::now() - start_).count();
    const StepRecord record = tracker_.take_next(elapsed);
    try {
      if (sink_) sink_->write(record);  // flushed: a checkpoint never gets ahead of the metrics
      if (options_.on_step) options_.on_step(record);
      if (!options_.out_dir.empty() &&
          checkpoint_due(record.step, spec_.run.checkpoint_every, spec_.run.steps))
        complete_checkpoint(record);
    } catch (const std::exception& e) {
      output_failed_ = true;
      if (result_.error.empty())
        result_.error = std::string("after step ") + std::to_string(record.step) + ": " + e.what();
      return;
    }
    result_.steps_completed = record.step + 1;
  }
}

// Every replica reported the step, so its state is in the .tmp folder.
void Driver::complete_checkpoint(const StepRecord& record) {
  CheckpointManifest manifest;
  manifest.steps_completed = record.step + 1;
  manifest.run = spec_.run.name;
  manifest.weight_version = record.weight_version;
  manifest.created_unix = static_cast<int64_t>(std::time(nullptr));
  const fs::path dir = commit_checkpoint(options_.out_dir, manifest);
  const auto pruned = prune_checkpoints(options_.out_dir, spec_.run.keep_checkpoints);
  log_->info("checkpoint {} written ({} of {} steps){}", dir.string(), manifest.steps_completed,
             spec_.run.steps,
             pruned.empty() ? "" : fmt::format("; removed {} older (run.keep_checkpoints = {})",
                                               pruned.size(), spec_.run.keep_checkpoints));
}

// metrics.jsonl is truncated for a fresh run and appended to when resuming;
// checkpoints this run would overwrite or that a crash left partial go first.
void Driver::open_run_folder() {
  const fs::path out_dir = options_.out_dir;
  fs::create_directories(out_dir);
  for (const RemovedCheckpoint& removed : clear_checkpoints_after(out_dir, options_.start_step)) {
    if (removed.incomplete)
      log_->info("removed incomplete checkpoint {}", removed.dir.string());
    else
      log_->warn("removed checkpoint {}: it is ahead of step {}, where this run starts",
                 removed.dir.string(), options_.start_step);
  }
  const auto mode = options_.start_step > 0 ? MetricsSink::Open::append : MetricsSink::Open::truncate;
  sink_ = std::make_unique<MetricsSink>((out_dir / "metrics.jsonl").string(), mode);
}

// Waits for reports in slices of poll_interval, so that an interrupt is seen
// within one slice; the no-progress clock restarts at each setup or step.
void Driver::supervise(caf::scoped_actor& self) {
  constexpr auto poll_interval = std::chrono::milliseconds(100);
  const auto timeout = to_ms(options_.no_progress_timeout_s);
  auto last_progress = clock_type::now();
  while (result_.error.empty() && result_.steps_completed < spec_.run.steps) {
    self->receive(
        [&](fired_atom, FiringReport& report) {
          last_progress = clock_type::now();
          // When each step ran, across processes (shows overlap with staleness > 0).
          log_->debug("{}[{}] ran step {} from {:.3f} to {:.3f} (unix s)", graph_.node(report.node).name,
                      report.replica, report.step, report.started_unix_s, report.started_unix_s + report.wall_s);
          tracker_.record(report);
          finish_steps();
          tick_sources(self);
        },
        [&](ready_atom, int node, int replica) {
          last_progress = clock_type::now();
          spdlog::debug("{} is set up", graph_.node(node).name + "[" + std::to_string(replica) + "]");
        },
        [&](failed_atom, std::string& line) { result_.error = line; },
        [&](caf::down_msg& down) {
          auto w = worker_of_.find(down.source);
          if (w != worker_of_.end() && (down.reason == caf::exit_reason::remote_link_unreachable ||
                                        !labels_.count(down.source))) {
            result_.error = worker_lost_line(w->second, down.reason);
            labels_.erase(down.source);
            return;
          }
          auto it = labels_.find(down.source);
          const std::string who = it == labels_.end() ? "an actor" : it->second;
          if (it != labels_.end()) labels_.erase(it);
          result_.error = who + " stopped unexpectedly at step " + std::to_string(tracker_.next()) +
                          ": " + caf::to_string(down.reason);
        },
        caf::after(poll_interval) >> [] {});
    if (!result_.error.empty() || result_.steps_completed >= spec_.run.steps) break;
    if (options_.interrupt && options_.interrupt->load()) {
      result_.interrupted = true;
      result_.error = "interrupted at step " + std::to_string(tracker_.next());
    } else if (clock_type::now() - last_progress > timeout) {
      std::string waiting;
      for (const auto& w : tracker_.waiting_on()) waiting += (waiting.empty() ? "" : ", ") + w;
      result_.error = fmt::format("no progress for {:g} s", timeout.count() / 1000.0) + ": step " +
                      std::to_string(tracker_.next()) + " still waits on " + waiting +
                      " (raise the no-progress timeout if a step is this slow)";
    }
  }
}

bool Driver::stop_all(caf::scoped_actor& self) {
  run_.stop_flag->store(true);
  run_.lease->close();
  for (const auto& [node, replicas] : actors_)
    for (const caf::actor& a : replicas)
      if (labels_.count(a.address())) self->send_exit(a, caf::exit_reason::user_shutdown);
  bool timed_out = false;
  while (!labels_.empty() && !timed_out) {
    self->receive([&](caf::down_msg& down) { labels_.erase(down.source); },
                  [&](fired_atom, FiringReport& report) {
                    tracker_.record(report);
                    finish_steps();
                  },
                  [&](ready_atom, int, int) {},
                  [&](failed_atom, std::string&) {},
                  caf::after(to_ms(options_.shutdown_timeout_s)) >> [&] { timed_out = true; });
  }
  for (const auto& [addr, label] : labels_)
    spdlog::error("{} did not stop within {} s; abandoning it", label, options_.shutdown_timeout_s);
  return labels_.empty();
}

RunResult Driver::run() {
  run_.spec = &spec_;
  run_.graph = &graph_;
  run_.placement = &placement_;
  run_.registry = &registry_;
  run_.out_dir = options_.out_dir;
  run_.start_step = options_.start_step;
  run_.resume_from = options_.resume_from;
  run_.log_sinks = options_.log_sinks.empty() ? spdlog::default_logger()->sinks() : options_.log_sinks;
  log_ = std::make_shared<spdlog::logger>("driver", run_.log_sinks.begin(), run_.log_sinks.end());
  log_->set_level(spdlog::default_logger()->level());
  if (!options_.out_dir.empty()) {
    try {
      open_run_folder();
    } catch (const std::exception& e) {
      result_.error = e.what();
      return result_;
    }
  }
  // The system keeps a reference to its config: both are leaked together
  // when a stage thread cannot be stopped.
  auto cfg = std::make_unique<caf::actor_system_config>();
  cfg->set("scheduler.max-threads", 2);  // stage actors are detached: own threads
  add_message_types(*cfg);
  if (!options_.workers.empty()) load_network(*cfg);
  auto system = std::make_unique<caf::actor_system>(*cfg);
  bool stopped = true;
  {
    caf::scoped_actor self{*system};
    if (spawn_and_wire(self)) {
      tick_sources(self);
      supervise(self);
    }
    stopped = stop_all(self);
    for (const caf::actor& w : workers_) self->send(w, bye_atom::value);
    actors_.clear();  // handles must not outlive the actor system
    workers_.clear();
  }
  if (!stopped) {  // a stage thread is still running: abandon it, let the process exit
    (void)system.release();
    (void)cfg.release();
    result_.abandoned = true;
  }
  result_.ok = result_.error.empty() && result_.steps_completed == spec_.run.steps;
  return result_;
}

}  // namespace

void check_implemented(const dsl::PipelineSpec& spec, const StageRegistry& registry) {
  std::vector<const dsl::StageSpec*> unknown, missing;
  for (const auto& stage : spec.stages) {
    const StageType* type = registry.find(stage.uses);
    if (!type) unknown.push_back(&stage);
    else if (!type->implemented()) missing.push_back(&stage);
  }
  auto listed = [](const std::vector<const dsl::StageSpec*>& stages) {  // 'a' (type), 'b' (type)
    std::string out;
    for (size_t i = 0; i < stages.size(); ++i)
      out += (i ? ", '" : "'") + stages[i]->name + "' (" + stages[i]->uses + ")";
    return out;
  };
  if (!unknown.empty())
    throw Error("unknown stage type for stage" + std::string(unknown.size() > 1 ? "s " : " ") +
                listed(unknown));
  if (missing.size() == 1)
    throw Error("stage '" + missing[0]->name + "' uses stage type '" + missing[0]->uses +
                "', which is declared but not implemented yet (only --dry-run can use it)");
  if (!missing.empty())
    throw Error("stages " + listed(missing) +
                " use stage types that are declared but not implemented yet (only --dry-run can "
                "use them)");
}

namespace {

// A resumed run starts inside the run, from a checkpoint that holds exactly
// the steps before it.
void check_start(const dsl::PipelineSpec& spec, const RunOptions& options) {
  if (options.start_step < 0 || options.start_step > spec.run.steps)
    throw Error("cannot start at step " + std::to_string(options.start_step) + ": run.steps is " +
                std::to_string(spec.run.steps));
  if (options.resume_from.empty()) return;
  const CheckpointManifest m = read_manifest(options.resume_from);
  if (m.steps_completed != options.start_step)
    throw Error("checkpoint '" + options.resume_from + "' holds " + std::to_string(m.steps_completed) +
                " steps, but the run would start at step " + std::to_string(options.start_step));
}

}  // namespace

RunResult run_pipeline(const dsl::PipelineSpec& spec, const Graph& graph, const Placement& placement,
                       const StageRegistry& registry, const RunOptions& options) {
  try {
    check_implemented(spec, registry);
    check_start(spec, options);
  } catch (const Error& e) {
    return RunResult{false, options.start_step, e.what()};
  }
  if (options.start_step == spec.run.steps) return RunResult{true, options.start_step, ""};
  if (spec.run.steps <= 0 || placement.replicas.empty()) return RunResult{true, 0, ""};
  Driver driver(spec, graph, placement, registry, options);
  return driver.run();
}

}  // namespace qerl::runtime
