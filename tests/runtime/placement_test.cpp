// place(): logical slots map to CUDA devices or the CPU, replicas split a
// stage's slots evenly, stages sharing a slot form one colocation group, and
// bad placements are errors naming the stage and its gpus entry.
#include <doctest/doctest.h>

#include "dsl/diagnostic.hpp"
#include "runtime/graph.hpp"
#include "runtime/placement.hpp"
#include "runtime/stage_registry.hpp"
#include "tests/runtime/test_spec.hpp"

using namespace qerl;
using namespace qerl::runtime;
using namespace qerl::runtime::testing;

namespace {

// data (host) -> rollout (needs a device) -> learner (needs a device) <- reference (needs a device)
struct Fixture {
  StageRegistry registry;
  Fixture() {
    registry.add(StageType{type_schema("p.data", {}, {port("out", "X")}), {}});
    registry.add(StageType{type_schema("p.model", {port("in", "X")}, {port("out", "X")},
                                       /*needs_device=*/true),
                           {}});
    registry.add(StageType{
        type_schema("p.learner", {port("a", "X"), port("b", "X")}, {}, /*needs_device=*/true), {}});
  }
  dsl::PipelineSpec spec(std::vector<int64_t> rollout, std::vector<int64_t> reference,
                         std::vector<int64_t> learner, int64_t learner_replicas = 1) const {
    return pipeline({stage("data", "p.data"),
                     stage("rollout", "p.model", {input("in", "data")}, rollout),
                     stage("reference", "p.model", {input("in", "rollout")}, reference),
                     stage("learner", "p.learner", {input("a", "rollout"), input("b", "reference")},
                           learner, learner_replicas)});
  }
  Placement placed(const dsl::PipelineSpec& s, int physical_gpus) const {
    return place(s, Graph::build(s, registry), registry, physical_gpus);
  }
  std::vector<dsl::Diagnostic> problems(const dsl::PipelineSpec& s, int physical_gpus) const {
    try {
      placed(s, physical_gpus);
    } catch (const dsl::PipelineError& e) {
      return e.diagnostics();
    }
    return {};
  }
};

std::vector<std::string> members(const Placement& p, int group) {
  std::vector<std::string> out;
  for (int m : p.groups.at(group).members) out.push_back(p.replicas[m].label());
  return out;
}

}  // namespace

TEST_CASE("colocated: stages on the same slot form one group; disaggregated: disjoint slots none") {
  Fixture f;
  const Placement colocated = f.placed(f.spec({0}, {0}, {0}), /*physical_gpus=*/1);
  REQUIRE(colocated.groups.size() == 1);
  CHECK(colocated.groups[0].slots == std::vector<int64_t>{0});
  CHECK(members(colocated, 0) == std::vector<std::string>{"rollout", "reference", "learner"});
  CHECK(colocated.replicas[0].colocation_group == -1);  // data runs on the host
  CHECK(colocated.to_text().find("group 0 on slot 0: rollout, reference, learner") !=
        std::string::npos);

  // The same stages, only the gpus lists changed.
  const Placement partly = f.placed(f.spec({0}, {1}, {1}), 2);
  REQUIRE(partly.groups.size() == 1);
  CHECK(members(partly, 0) == std::vector<std::string>{"reference", "learner"});
  CHECK(partly.of(1, 0).colocation_group == -1);  // rollout owns slot 0

  const Placement apart = f.placed(f.spec({0}, {1}, {2}), 3);
  CHECK(apart.groups.empty());
  CHECK(apart.to_text().find("colocation: none") != std::string::npos);
}

TEST_CASE("slots map to cuda:<i> with GPUs and to the CPU, with one notice, without") {
  Fixture f;
  const auto spec = f.spec({0}, {1}, {0, 1});
  const Placement gpu = f.placed(spec, 2);
  CHECK(gpu.device == "cuda");
  CHECK(gpu.notices.empty());
  CHECK(gpu.of(3, 0).devices == std::vector<std::string>{"cuda:0", "cuda:1"});
  CHECK(gpu.of(0, 0).devices == std::vector<std::string>{"cpu"});  // host stage

  const Placement cpu = f.placed(spec, 0);
  CHECK(cpu.device == "cpu");
  CHECK(cpu.notices == std::vector<std::string>{"no CUDA device: 2 logical GPU slots run on the CPU"});
  CHECK(cpu.of(3, 0).devices == std::vector<std::string>{"cpu", "cpu"});
  CHECK(cpu.of(3, 0).slots == std::vector<int64_t>{0, 1});
  REQUIRE(cpu.groups.size() == 1);  // logical slots still time-slice on the CPU

  auto forced = spec;
  forced.cluster.device = dsl::DeviceKind::cpu;
  const Placement explicit_cpu = f.placed(forced, 4);
  CHECK(explicit_cpu.device == "cpu");
  CHECK(explicit_cpu.notices.empty());
}

TEST_CASE("replicas split the gpus list evenly") {
  Fixture f;
  const Placement p = f.placed(f.spec({0}, {1}, {0, 1, 2, 3}, /*learner_replicas=*/2), 4);
  CHECK(p.of(3, 0).slots == std::vector<int64_t>{0, 1});
  CHECK(p.of(3, 1).slots == std::vector<int64_t>{2, 3});
  CHECK(p.of(3, 1).label() == "learner[1]");
}

TEST_CASE("placement errors name the stage and the gpus entry") {
  Fixture f;
  SUBCASE("slot beyond the visible GPUs with device = cuda") {
    auto spec = f.spec({0}, {1}, {0, 2});
    spec.cluster.device = dsl::DeviceKind::cuda;
    const auto problems = f.problems(spec, 2);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].key_path == "stages.learner.gpus");
    CHECK(problems[0].pos.line == stage_line(spec, "learner"));
    CHECK(problems[0].message ==
          "stage 'learner': gpus[1] = 2, but only 2 CUDA device(s) are visible (0..1) with "
          "cluster.device = \"cuda\"");
  }
  SUBCASE("device = cuda without any GPU") {
    auto spec = f.spec({0}, {0}, {0});
    spec.cluster.device = dsl::DeviceKind::cuda;
    CHECK(f.problems(spec, 0).size() == 3);
  }
  SUBCASE("slot beyond cluster.num_gpus") {
    auto spec = f.spec({0}, {3}, {0});
    spec.cluster.num_gpus = 2;
    const auto problems = f.problems(spec, 0);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].message ==
          "stage 'reference': gpus[0] = 3 is outside cluster.num_gpus = 2 (slots 0..1)");
  }
  SUBCASE("a stage that needs a device has none") {
    const auto problems = f.problems(f.spec({}, {0}, {0}), 1);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].message.rfind("stage 'rollout' has no device: set gpus = [...]", 0) == 0);
  }
  SUBCASE("replicas that do not divide the gpus list, or outnumber it") {
    auto problems = f.problems(f.spec({0}, {0}, {0, 1, 2}, 2), 4);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].message ==
          "stage 'learner': 3 gpus cannot be split evenly over 2 replicas (use a multiple of 2)");
    problems = f.problems(f.spec({0}, {0}, {0, 1}, 3), 4);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].message ==
          "stage 'learner' has 3 replicas but 2 gpus; each replica needs at least one slot");
  }
  SUBCASE("every problem at once") {
    auto spec = f.spec({}, {7}, {0, 0});
    spec.cluster.device = dsl::DeviceKind::cuda;
    CHECK(f.problems(spec, 1).size() == 3);  // no device, slot 7, slot 0 listed twice
  }
}
