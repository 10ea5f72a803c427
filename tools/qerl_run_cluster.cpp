// The worker flags and process, the coordinator's worker preparation and
// --dry-run's process lines; see qerl_run_cluster.hpp.
#include "tools/qerl_run_cluster.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <optional>

#include "common/error.hpp"
#include "dsl/cluster.hpp"
#include "dsl/loader.hpp"
#include "dsl/pipeline_spec.hpp"
#include "runtime/build_id.hpp"
#include "runtime/cluster_secret.hpp"
#include "runtime/detail/worker_protocol.hpp"
#include "runtime/placement.hpp"
#include "runtime/stage_registry.hpp"
#include "runtime/worker.hpp"

namespace qerl::tools {

void add_worker_flags(CLI::App& app, WorkerFlags& flags) {
  app.add_flag("--worker", flags.enabled,
               "Run as a worker process of a multi-process run (needs QERL_CLUSTER_SECRET or "
               "QERL_CLUSTER_SECRET_FILE); an optional pipeline file makes it accept only that pipeline");
  app.add_option("--listen", flags.listen, "--worker: the port to listen on (default 29600 + RANK when RANK is set)")
      ->type_name("PORT")
      ->check(CLI::Range(0, 65535));
  app.add_option("--bind", flags.bind, "--worker: the address to listen on (default 127.0.0.1)")->type_name("ADDR");
  app.add_option("--port-fd", flags.port_fd)->group("");        // local workers report their port here
  app.add_option("--pretend-build", flags.pretend_build)->group("");  // tests: a wrong-build worker
}

std::string process_plan(const dsl::PipelineSpec& spec, const runtime::Placement& placement) {
  std::string out = "\n# processes\n";
  const bool local = dsl::local_workers(spec.cluster);
  for (const runtime::ReplicaPlacement& r : placement.replicas) {
    const int64_t w = spec.find_stage(r.stage)->worker;
    std::string where;
    if (w == 0) where = "coordinator (this qerl-run process)";
    else if (local) where = "worker " + std::to_string(w) + " (local process " + std::to_string(w) + ")";
    else where = "worker " + std::to_string(w) + " (" + spec.cluster.workers.at(w - 1) + ")";
    std::string devices;
    for (const auto& d : r.devices) devices += (devices.empty() ? "" : ", ") + d;
    out += "  " + r.label() + ": " + where + ", device " + devices + "\n";
  }
  return out;
}

std::string pipeline_version(const dsl::PipelineSpec& spec, const dsl::Schema& schema) {
  dsl::PipelineSpec copy = spec;
  copy.run.out_dir.clear();
  copy.cluster.workers.clear();  // a worker started for the file cannot know the others' ports
  return runtime::detail::pipeline_hash(dsl::to_toml(copy, schema));
}

namespace {

std::string this_executable() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw Error("cannot find this executable (/proc/self/exe) to start local workers");
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

std::unique_ptr<runtime::LocalWorkers> prepare_workers(const dsl::PipelineSpec& spec, const dsl::Schema& schema,
                                                       const std::string& log_level, runtime::RunOptions& options) {
  const int64_t count = dsl::worker_count(spec);
  if (spec.cluster.workers.empty() || count == 0) return nullptr;
  options.pipeline_text = dsl::to_toml(spec, schema);
  options.pipeline_version = pipeline_version(spec, schema);
  std::unique_ptr<runtime::LocalWorkers> local;
  if (dsl::local_workers(spec.cluster)) {
    options.cluster_secret = runtime::generate_cluster_secret();  // handed to the children by environment
    local = std::make_unique<runtime::LocalWorkers>(this_executable(), static_cast<int>(count), options.cluster_secret,
                                                    std::vector<std::string>{"--log-level", log_level});
    options.workers = local->endpoints();
    for (size_t i = 0; i < options.workers.size(); ++i)
      spdlog::info("local worker {} started: {}", i + 1, options.workers[i].label);
    return local;
  }
  const auto secret = runtime::read_cluster_secret();
  if (!secret)
    throw Error(std::string("cluster.workers names host:port workers: set ") + runtime::secret_env + " or " +
                runtime::secret_file_env + " (a file only you can read) to the run's shared secret");
  options.cluster_secret = *secret;
  for (const std::string& w : spec.cluster.workers) {
    const auto address = dsl::parse_worker_address(w, nullptr);
    options.workers.push_back(runtime::WorkerEndpoint{address->host, address->port, w});
  }
  return nullptr;
}

int run_worker_process(const WorkerFlags& flags, const std::string& pipeline, const std::vector<std::string>& overrides,
                       int physical_gpus,
                       std::function<runtime::StageRegistry&(const std::vector<std::string>&)> registry_for) {
  runtime::WorkerOptions options;
  options.bind = flags.bind;
  options.port = flags.listen;
  std::string launcher;
  for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"})
    if (const char* v = std::getenv(name)) launcher += std::string(launcher.empty() ? "" : ", ") + name + "=" + v;
  if (!launcher.empty()) spdlog::info("qerl worker: launcher environment {}", launcher);
  if (options.port < 0) {
    const char* rank = std::getenv("RANK");
    if (!rank) throw Error("--worker needs --listen PORT (or RANK set by a launcher: port 29600 + RANK)");
    options.port = 29600 + std::atoi(rank);
  }
  options.port_fd = flags.port_fd;
  const auto secret = runtime::read_cluster_secret();
  if (!secret)
    throw Error(std::string("--worker needs the run's shared secret in ") + runtime::secret_env + " or " +
                runtime::secret_file_env + " (a file only you can read); never on the command line");
  options.secret = *secret;
  options.build_id = flags.pretend_build.empty() ? runtime::build_id() : flags.pretend_build;
  options.physical_gpus = physical_gpus;
  // Built-in stages and plugins register once per process: later calls must ask for the same plugins.
  auto loaded = std::make_shared<std::optional<std::vector<std::string>>>();
  options.registry_for = [registry_for, loaded](const std::vector<std::string>& plugins) -> runtime::StageRegistry& {
    if (!*loaded) {
      runtime::StageRegistry& registry = registry_for(plugins);
      *loaded = plugins;
      return registry;
    }
    if (**loaded != plugins)
      throw Error("the coordinator's pipeline loads other plugins than this worker's pipeline file");
    return runtime::StageRegistry::global();
  };
  if (!pipeline.empty()) {  // accept only this pipeline
    auto& registry = options.registry_for(dsl::read_plugin_list(pipeline, overrides));
    const dsl::PipelineSpec spec = dsl::load_pipeline(pipeline, overrides, registry.schema());
    options.pipeline_version = pipeline_version(spec, registry.schema());
  }
  return runtime::run_worker(options);
}

}  // namespace qerl::tools
