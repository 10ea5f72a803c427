// qerl-run: the one command a user runs. Loads a pipeline file (with
// `extends`, `--set` overrides and plugins), builds and validates the actor
// graph, places stages on devices, then either prints the plan (--dry-run) or
// runs it, writing <out_dir>/resolved.toml, command.txt, metrics.jsonl,
// checkpoints/ and TensorBoard event files (tensorboard/, live).
// --resume RUN_DIR continues a stopped run from its newest checkpoint. A run
// owns its folder (flock) until it exits; Ctrl-C stops it with one line
// saying how to resume. Every user error ends as one or more clear lines on
// stderr and a non-zero exit.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>

#include "actors/builtin_stages.hpp"
#include "actors/memory_plan.hpp"
#include "dsl/explain.hpp"
#include "dsl/loader.hpp"
#include "runtime/checkpoint.hpp"
#include "tools/qerl_run_cluster.hpp"
#include "runtime/driver.hpp"
#include "runtime/graph.hpp"
#include "runtime/placement.hpp"
#include "runtime/plugin_loader.hpp"
#include "runtime/progress.hpp"
#include "runtime/run_folder_lock.hpp"
#include "common/atomic_file.hpp"
#include "runtime/stage_registry.hpp"
#include "tools/command_line.hpp"
#include "tools/device_probe.hpp"
#include "tools/tensorboard_feed.hpp"

namespace fs = std::filesystem;
using namespace qerl;

namespace {

// Exit statuses: 0 success, 1 the run failed, 2 the input was rejected,
// 128 + signal number when SIGINT/SIGTERM stopped the run.
constexpr int exit_run_failed = 1;
constexpr int exit_bad_input = 2;

// Set by the SIGINT/SIGTERM handler, read by the driver (the one piece of
// process-wide state a signal handler can reach).
std::atomic<bool> interrupted{false};
volatile sig_atomic_t interrupt_signal = 0;

void write_stderr(const char* text, size_t size) { (void)!::write(STDERR_FILENO, text, size); }

// The first signal asks the driver to stop the stages (it reports where the
// run stopped); a second one ends the process at once.
extern "C" void on_interrupt(int signal) {
  if (interrupted.exchange(true)) {
    static const char quit[] = "\nqerl-run: second interrupt: exiting at once\n";
    write_stderr(quit, sizeof(quit) - 1);
    ::_exit(128 + signal);
  }
  interrupt_signal = signal;
  static const char stopping[] = "\nqerl-run: interrupt: stopping the run (press Ctrl-C again to quit at once)\n";
  write_stderr(stopping, sizeof(stopping) - 1);
}

void handle_interrupts() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

// The one line an interrupted run ends with: where it stopped, what is kept
// and how to continue.
std::string interrupted_line(const dsl::PipelineSpec& spec, const runtime::RunResult& result,
                             const fs::path& out_dir) {
  std::string line = "qerl-run: interrupted after " + std::to_string(result.steps_completed) + " of " +
                     std::to_string(spec.run.steps) + " steps (" + (out_dir / "metrics.jsonl").string() +
                     " has them); ";
  std::optional<runtime::CheckpointInfo> checkpoint;
  try {
    checkpoint = runtime::latest_checkpoint(out_dir);
  } catch (const Error&) {
  }
  if (checkpoint)
    return line + "last complete checkpoint: " + checkpoint->dir.string() + " (" +
           std::to_string(checkpoint->steps_completed) + " steps); continue with: qerl-run --resume " +
           out_dir.string();
  return line + "no complete checkpoint" +
         (spec.run.checkpoint_every == 0 ? " (run.checkpoint_every = 0)" : "") +
         ", so it cannot be resumed; start it again with --overwrite";
}

struct Options {
  std::string pipeline;
  std::vector<std::string> overrides;
  bool dry_run = false;
  bool explain = false;
  std::string explain_key;
  bool print_reference = false;
  std::string out_dir;
  bool overwrite = false;
  std::string resume_dir;  // --resume RUN_DIR
  std::string dot_file;    // --dot FILE: the actor graph in Graphviz format
  std::string log_level = "info";
  std::string tensorboard_dir;  // --tensorboard DIR; "" = <out_dir>/tensorboard
  bool no_tensorboard = false;
  std::vector<std::string> command;  // argv, for <out_dir>/command.txt
  std::vector<std::string> device_memory;  // --device-memory SIZE | DEVICE=SIZE (repeatable)
  int assume_gpus = -1;                    // --assume-gpus N (dry run only); -1 = probe
  bool allow_overcommit = false;           // --allow-overcommit: warn instead of refusing the plan
  tools::WorkerFlags worker;  // --worker, --listen, --bind (tools/qerl_run_cluster.hpp)
};

// --resume continues the run that RUN_DIR/resolved.toml describes: the
// pipeline and the folder are given, and only run.steps may change (other
// keys could contradict the saved state; resolved.toml can be edited).
void check_resume_options(const Options& opt) {
  if (!opt.pipeline.empty())
    throw Error("--resume reads the pipeline from RUN_DIR/resolved.toml: do not also pass a pipeline file");
  if (!opt.out_dir.empty() || opt.overwrite)
    throw Error("--resume continues the run in RUN_DIR: --out and --overwrite do not apply");
  for (const std::string& o : opt.overrides) {
    std::string key = o.substr(0, o.find('='));
    key.erase(key.find_last_not_of(" \t") + 1);
    key.erase(0, key.find_first_not_of(" \t"));
    if (key != "run.steps")
      throw Error("--resume allows only --set run.steps=N, got --set " + o +
                  " (to change anything else, edit RUN_DIR/resolved.toml)");
  }
  const fs::path resolved = fs::path(opt.resume_dir) / "resolved.toml";
  if (!fs::is_regular_file(resolved))
    throw Error("cannot resume '" + opt.resume_dir + "': it holds no resolved.toml (not a run folder)");
}

// --resume: the newest complete checkpoint says where the run continues;
// metrics lines of later steps (written before the run stopped) are dropped.
// nullopt: the run is already complete.
std::optional<runtime::CheckpointInfo> prepare_resume(const dsl::PipelineSpec& spec, const fs::path& run_dir) {
  const auto checkpoint = runtime::latest_checkpoint(run_dir);
  if (!checkpoint && !runtime::holds_completed_steps(run_dir))
    throw Error("cannot resume '" + run_dir.string() + "': no step of it completed; run it again with: " +
                "qerl-run " + (run_dir / "resolved.toml").string() + " --out " + run_dir.string());
  if (!checkpoint)
    throw Error("cannot resume '" + run_dir.string() + "': no complete checkpoint in " +
                runtime::checkpoints_folder(run_dir).string() +
                (spec.run.checkpoint_every == 0 ? " (run.checkpoint_every = 0 writes none)" : ""));
  const int64_t done = checkpoint->steps_completed;
  if (done > spec.run.steps)
    throw Error("cannot resume '" + run_dir.string() + "': its newest checkpoint holds " +
                std::to_string(done) + " steps, more than run.steps = " + std::to_string(spec.run.steps));
  if (done == spec.run.steps) {
    const std::string line = "run '" + spec.run.name + "' is already complete (" + std::to_string(done) +
                             " of " + std::to_string(spec.run.steps) +
                             " steps); nothing to resume (to run it longer: qerl-run --resume " +
                             run_dir.string() + " --set run.steps=N)";
    std::cout << line << "\n";
    std::cerr << "qerl-run: " << line << "\n";
    return std::nullopt;
  }
  runtime::keep_metrics_before(run_dir / "metrics.jsonl", done);
  spdlog::info("resuming run '{}' at step {} of {} from {}", spec.run.name, done, spec.run.steps,
               checkpoint->dir.string());
  return checkpoint;
}

// command.txt: the command line of the run (a resume adds its own line).
void write_command_line(const fs::path& file, const std::vector<std::string>& command, bool resuming) {
  std::string text;
  if (resuming) {
    std::ifstream in(file);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  write_file_atomically(file, text + tools::shell_command(command) + "\n");
}

// The run folder is user input: failing to create it is a one-line error.
void make_run_folder(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create run folder '" + dir.string() + "' (run.out_dir / --out): " + ec.message());
}

runtime::StageRegistry& registry_with(const std::vector<std::string>& plugins) {
  auto& registry = runtime::StageRegistry::global();
  actors::register_builtin_stages(registry);
  for (const auto& path : plugins) runtime::load_plugin(path, registry);
  return registry;
}

int print_docs(const Options& opt) {
  std::vector<std::string> plugins;
  if (!opt.pipeline.empty()) plugins = dsl::read_plugin_list(opt.pipeline, opt.overrides);
  const dsl::Schema schema = registry_with(plugins).schema();
  std::cout << (opt.print_reference ? dsl::reference_markdown(schema)
                                    : dsl::explain(schema, opt.explain_key));
  return 0;
}

// Each device's capacity for the memory plan: --device-memory (DEVICE=SIZE,
// then a bare SIZE for every device), else cluster.gpu_memory_gib or the
// CUDA device's own (cuda:N), or MemTotal (cpu).
actors::CapacityOf capacity_of(const Options& opt, const dsl::PipelineSpec& spec) {
  std::map<std::string, int64_t> per_device;
  std::optional<int64_t> every;
  for (const std::string& item : opt.device_memory) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) every = actors::parse_memory_size(item);
    else per_device[item.substr(0, eq)] = actors::parse_memory_size(item.substr(eq + 1));
  }
  const double gib = spec.cluster.gpu_memory_gib;
  return [per_device, every, gib](const std::string& device) -> std::optional<std::pair<int64_t, std::string>> {
    if (const auto it = per_device.find(device); it != per_device.end()) return std::make_pair(it->second, "--device-memory");
    if (every) return std::make_pair(*every, "--device-memory");
    if (device.rfind("cuda:", 0) == 0) {
      if (gib > 0) return std::make_pair(static_cast<int64_t>(gib * 1024 * 1024 * 1024), "cluster.gpu_memory_gib");
      if (const auto bytes = tools::cuda_device_memory(std::stoi(device.substr(5))))
        return std::make_pair(*bytes, "cudaGetDeviceProperties");
      return std::nullopt;
    }
    if (const auto bytes = tools::cpu_memory_bytes()) return std::make_pair(*bytes, "/proc/meminfo MemTotal");
    return std::nullopt;
  };
}

int run(const Options& opt) {
  const bool resuming = !opt.resume_dir.empty();
  if (resuming) check_resume_options(opt);
  const std::string file =
      resuming ? (fs::path(opt.resume_dir) / "resolved.toml").string() : opt.pipeline;
  auto& registry = registry_with(dsl::read_plugin_list(file, opt.overrides));
  dsl::PipelineSpec spec = dsl::load_pipeline(file, opt.overrides, registry.schema());
  if (resuming) spec.run.out_dir = opt.resume_dir;
  else if (!opt.out_dir.empty()) spec.run.out_dir = opt.out_dir;
  for (const auto& warning : spec.warnings) spdlog::warn("{}", warning.format());

  const runtime::Graph graph = runtime::Graph::build(spec, registry);
  if (opt.assume_gpus >= 0 && !opt.dry_run)
    throw Error("--assume-gpus plans for GPUs this machine may not have: it goes with --dry-run only");
  const runtime::Placement placement = runtime::place(
      spec, graph, registry, opt.assume_gpus >= 0 ? opt.assume_gpus : tools::count_cuda_devices());
  for (const auto& notice : placement.notices) spdlog::info("{}", notice);
  const actors::MemoryPlan memory = actors::plan_memory(spec, placement, capacity_of(opt, spec));
  const std::vector<std::string> refusals = memory.refusals();

  const fs::path out_dir = spec.run.out_dir;
  if (!opt.dot_file.empty()) write_file_atomically(opt.dot_file, graph.to_dot());
  if (opt.dry_run) {  // writes nothing but what --dot asks for
    std::cout << "# resolved pipeline\n" << dsl::to_toml(spec, registry.schema()) << "\n"
              << "# actor graph\n" << graph.to_text() << "\n"
              << "# placement\n" << placement.to_text()
              << tools::process_plan(spec, placement) << "\n"
              << "# memory plan\n" << memory.to_text();
    if (!opt.dot_file.empty()) std::cout << "\n(dry run: graph written to " << opt.dot_file << ")\n";
    if (!refusals.empty() && !opt.allow_overcommit) {
      std::cout.flush();
      for (const auto& line : refusals) std::cerr << "qerl-run: error: " << line << "\n";
      return exit_bad_input;
    }
    return 0;
  }
  for (const auto& line : refusals) {
    if (!opt.allow_overcommit) throw Error(line);
    spdlog::warn("{} (--allow-overcommit: running anyway)", line);
  }
  for (const auto& device : memory.devices)
    spdlog::info("memory plan: {} planned peak {}{}", device.device, actors::memory_text(device.peak()),
                 device.capacity ? " of " + actors::memory_text(*device.capacity) : std::string());

  runtime::check_implemented(spec, registry);
  if (!resuming) make_run_folder(out_dir);
  // One process owns the folder from here to exit, before anything in it changes.
  const runtime::RunFolderLock lock(out_dir);
  runtime::RunOptions run_options;
  if (resuming) {
    const auto checkpoint = prepare_resume(spec, out_dir);
    if (!checkpoint) return 0;
    run_options.start_step = checkpoint->steps_completed;
    run_options.resume_from = checkpoint->dir.string();
  } else if (runtime::holds_completed_steps(out_dir) && !opt.overwrite) {
    // A folder holding finished steps is never overwritten (they would be
    // lost); one whose run failed before its first step is simply reused.
    throw Error("run folder '" + out_dir.string() +
                "' already holds a run (steps in metrics.jsonl or checkpoints/): choose another --out / "
                "run.out_dir, pass --overwrite, or --resume it");
  }
  write_file_atomically(out_dir / "resolved.toml", dsl::to_toml(spec, registry.schema()));
  write_command_line(out_dir / "command.txt", opt.command, resuming);
  std::optional<tools::TensorBoardFeed> tensorboard;
  if (!opt.no_tensorboard) {
    auto feed = tools::default_tensorboard_feed(
        opt.tensorboard_dir.empty() ? (out_dir / "tensorboard").string() : opt.tensorboard_dir);
    // Event files of an earlier run in the folder (--overwrite, or the steps a
    // resume redoes) are hidden by TensorBoard from this step on.
    feed.purge_step = run_options.start_step;
    tensorboard.emplace(std::move(feed), std::cerr);
    if (tensorboard->running()) spdlog::info("TensorBoard logs: tensorboard --logdir {}", tensorboard->log_dir());
  }

  runtime::ProgressLine progress(spec.run.steps);
  progress.start_at(run_options.start_step);
  run_options.out_dir = out_dir.string();
  run_options.on_step = [&](const runtime::StepRecord& record) {
    progress.update(record);
    if (tensorboard) tensorboard->write(runtime::to_json_line(record));
  };
  run_options.interrupt = &interrupted;
  handle_interrupts();
  // Worker processes (cluster.workers): started here when "local".
  const auto local_workers = tools::prepare_workers(spec, registry.schema(), opt.log_level, run_options);
  const runtime::RunResult result = run_pipeline(spec, graph, placement, registry, run_options);
  progress.finish();
  if (tensorboard && !result.abandoned) tensorboard->close(/*timeout_s=*/60);
  if (result.interrupted) {
    std::cerr << interrupted_line(spec, result, out_dir) << "\n";
    const int status = 128 + (interrupt_signal ? static_cast<int>(interrupt_signal) : SIGINT);
    if (result.abandoned) std::cerr.flush(), std::_Exit(status);
    return status;
  }
  if (!result.ok) {
    std::cerr << "qerl-run: error: " << result.error << "\n";
    // A stage thread that could not be stopped may still read the spec:
    // end here, without running destructors under it.
    if (result.abandoned) std::cerr.flush(), std::_Exit(exit_run_failed);
    return exit_run_failed;
  }
  spdlog::info("run '{}' finished {} steps; metrics in {}", spec.run.name, result.steps_completed,
               (out_dir / "metrics.jsonl").string());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/1);  // NVLink multicast off in every qerl process (issue 17)
  Options opt;
  CLI::App app{"qerl-run: run a qerl pipeline (TOML) as a graph of actors"};
  app.add_option("pipeline", opt.pipeline, "Pipeline file (.toml)");
  app.add_option("--set", opt.overrides, "Override a key: section.key=value (repeatable)")
      ->type_name("KEY=VALUE");
  app.add_flag("--dry-run", opt.dry_run, "Validate and print the resolved pipeline, graph and placement");
  app.add_option("--explain", opt.explain_key, "Describe a key, section or stage type (no value: overview)")
      ->expected(0, 1)
      ->type_name("[KEY]");
  app.add_flag("--print-reference", opt.print_reference,
               "Print the Markdown pipeline reference (docs/pipeline-reference.md)");
  app.add_option("--out", opt.out_dir, "Run folder (overrides run.out_dir)");
  app.add_flag("--overwrite", opt.overwrite, "Run into a folder that already holds a run's metrics");
  app.add_option("--dot", opt.dot_file, "Write the actor graph in Graphviz format to FILE")
      ->type_name("FILE");
  app.add_option("--resume", opt.resume_dir,
                 "Continue the run in RUN_DIR from its newest checkpoint (only --set run.steps=N may change)")
      ->type_name("RUN_DIR");
  auto* tensorboard = app.add_option("--tensorboard", opt.tensorboard_dir,
                                     "Write TensorBoard event files to DIR (default: <out_dir>/tensorboard)")
                          ->type_name("DIR");
  app.add_flag("--no-tensorboard", opt.no_tensorboard, "Write no TensorBoard event files")->excludes(tensorboard);
  app.add_option("--log-level", opt.log_level, "trace|debug|info|warn|error|off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--device-memory", opt.device_memory,
                 "Capacity for the memory plan: SIZE for every device, or DEVICE=SIZE (cuda:0=80GB, cpu=16GiB); repeatable")
      ->type_name("[DEVICE=]SIZE");
  app.add_option("--assume-gpus", opt.assume_gpus,
                 "With --dry-run: place and plan as if N CUDA devices were visible (plan a GPU host from a laptop)")
      ->type_name("N")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--allow-overcommit", opt.allow_overcommit,
               "Run (or pass --dry-run) even when the memory plan exceeds a device's capacity (experts only)");
  tools::add_worker_flags(app, opt.worker);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);  // prints help, or the error and a hint
    return status == 0 ? 0 : exit_bad_input;
  }
  opt.explain = app.count("--explain") > 0;
  opt.command.assign(argv, argv + argc);
  spdlog::set_level(spdlog::level::from_str(opt.log_level));
  spdlog::set_pattern("[%H:%M:%S] [%^%l%$] %v");

  try {
    if (opt.explain || opt.print_reference) return print_docs(opt);
    if (opt.worker.enabled)
      return tools::run_worker_process(opt.worker, opt.pipeline, opt.overrides, tools::count_cuda_devices(),
                                       [](const std::vector<std::string>& p) -> runtime::StageRegistry& {
                                         return registry_with(p);
                                       });
    if (opt.pipeline.empty() && opt.resume_dir.empty()) {
      std::cerr << "qerl-run: error: no pipeline file given (see --help)\n";
      return exit_bad_input;
    }
    return run(opt);
  } catch (const dsl::PipelineError& e) {
    std::cerr << e.what() << "\n";
    return exit_bad_input;
  } catch (const Error& e) {
    std::cerr << "qerl-run: error: " << e.what() << "\n";
    return exit_bad_input;
  } catch (const std::exception& e) {
    std::cerr << "qerl-run: internal error: " << e.what() << "\n";
    return exit_run_failed;
  }
}
