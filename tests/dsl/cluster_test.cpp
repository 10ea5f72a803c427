// [cluster] workers and the stage key `worker` (issue 17): what loads, what
// each helper answers, and the one line each mistake gets (file:line, key,
// what was expected).
#include <doctest/doctest.h>

#include "dsl/cluster.hpp"
#include "dsl/loader.hpp"
#include "test_schema.hpp"

using namespace qerl::dsl;
namespace testing = qerl::dsl::testing;

namespace {

const std::string two_stages =
    "[model]\npath = \"/m\"\n[stages.d]\nuses = \"data\"\n[stages.e]\nuses = \"data\"\n";

PipelineSpec load(const std::string& text, const Overrides& overrides = {}) {
  return load_pipeline_text(text, "t.toml", overrides, testing::test_schema());
}

// The one error line a load must fail with.
Diagnostic only_error(const std::string& text, const Overrides& overrides = {}) {
  try {
    load(text, overrides);
  } catch (const PipelineError& e) {
    std::vector<Diagnostic> errors;
    for (const Diagnostic& d : e.diagnostics())
      if (d.severity == Severity::error) errors.push_back(d);
    CAPTURE(std::string(e.what()));
    REQUIRE(errors.size() == 1);
    return errors[0];
  }
  FAIL("expected a PipelineError");
  return {};
}

}  // namespace

TEST_CASE("no [cluster] workers: one process, every stage on the coordinator") {
  const PipelineSpec spec = load(two_stages);
  CHECK(spec.cluster.workers.empty());
  CHECK(worker_count(spec) == 0);
  CHECK(spec.find_stage("d")->worker == 0);
  CHECK(stages_of_worker(spec, 0) == std::vector<std::string>{"d", "e"});
}

TEST_CASE("workers = \"local\" (a bare string or via --set): one local process per worker number used") {
  const PipelineSpec spec = load(two_stages + "[cluster]\nworkers = \"local\"\n",
                                 {"stages.d.worker=2", "stages.e.worker=1"});
  CHECK(spec.cluster.workers == std::vector<std::string>{"local"});
  CHECK(local_workers(spec.cluster));
  CHECK(worker_count(spec) == 2);
  CHECK(stages_of_worker(spec, 1) == std::vector<std::string>{"e"});
  CHECK(stages_of_worker(spec, 2) == std::vector<std::string>{"d"});
  const PipelineSpec by_set = load(two_stages, {"cluster.workers=local", "stages.e.worker=1"});
  CHECK(local_workers(by_set.cluster));
  CHECK(worker_count(by_set) == 1);
  // The resolved text reads back to the same processes.
  const PipelineSpec again = load(to_toml(by_set, testing::test_schema()));
  CHECK(again.cluster.workers == by_set.cluster.workers);
  CHECK(again.find_stage("e")->worker == 1);
}

TEST_CASE("workers as host:port: worker N is the N-th entry") {
  const PipelineSpec spec =
      load(two_stages + "[cluster]\nworkers = [\"node-a:7000\", \"10.0.0.2:7001\", \"[::1]:7002\"]\n",
           {"stages.e.worker=3"});
  CHECK(worker_count(spec) == 3);
  const PipelineSpec by_set = load(two_stages, {"cluster.workers=[\"a:1\", \"b:2\"]", "stages.d.worker=2"});
  CHECK(by_set.cluster.workers == std::vector<std::string>{"a:1", "b:2"});
  CHECK(stages_of_worker(by_set, 2) == std::vector<std::string>{"d"});
  std::string problem;
  const auto a = parse_worker_address("node-a:7000", &problem);
  REQUIRE(a);
  CHECK(a->host == "node-a");
  CHECK(a->port == 7000);
  const auto v6 = parse_worker_address("[::1]:7002", &problem);
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  for (const char* bad : {"node-a", ":7000", "node-a:", "node-a:0", "node-a:65536", "node-a:7x", "a b:1"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_worker_address(bad, &problem));
    CHECK(!problem.empty());
  }
}

TEST_CASE("cluster mistakes are one line each, naming file:line, the key and what was expected") {
  {
    const Diagnostic d = only_error(two_stages + "[cluster]\nworkers = [\"node-a\"]\n");
    CHECK(d.key_path == "cluster.workers");
    CHECK(d.pos.line == 8);
    CHECK(d.message.find("expected \"host:port\"") != std::string::npos);
  }
  {
    const Diagnostic d = only_error(two_stages + "[cluster]\nworkers = [\"a:1\", \"local\"]\n");
    CHECK(d.message.find("\"local\" stands alone") != std::string::npos);
  }
  {
    const Diagnostic d = only_error(two_stages + "[cluster]\nworkers = 3\n");
    CHECK(d.key_path == "cluster.workers");
    CHECK(d.message.find("list of strings") != std::string::npos);
  }
  {
    const Diagnostic d = only_error(
        "[model]\npath = \"/m\"\n[stages.d]\nuses = \"data\"\nworker = 1\n");
    CHECK(d.key_path == "stages.d.worker");
    CHECK(d.pos.line == 5);
    CHECK(d.message.find("cluster.workers is empty") != std::string::npos);
  }
  {
    const Diagnostic d = only_error(two_stages + "[cluster]\nworkers = [\"a:1\"]\n", {"stages.d.worker=2"});
    CHECK(d.key_path == "stages.d.worker");
    CHECK(d.message.find("expected 0..1") != std::string::npos);
  }
  {
    const Diagnostic d = only_error(two_stages, {"stages.d.worker=-1"});
    CHECK(d.key_path == "stages.d.worker");
  }
}
