// Builders of in-code PipelineSpecs for the runtime tests.
#include "tests/runtime/test_spec.hpp"

#include <unistd.h>

#include <stdexcept>

namespace qerl::runtime::testing {

dsl::InputSpec input(const std::string& port, const std::string& from,
                     std::optional<int64_t> staleness) {
  dsl::InputSpec in;
  in.port = port;
  const auto dot = from.find('.');
  in.from_stage = from.substr(0, dot);
  in.from_port = dot == std::string::npos ? "" : from.substr(dot + 1);
  in.staleness = staleness;
  return in;
}

dsl::StageSpec stage(const std::string& name, const std::string& uses,
                     std::vector<dsl::InputSpec> inputs, std::vector<int64_t> gpus, int64_t replicas) {
  dsl::StageSpec s;
  s.name = name;
  s.uses = uses;
  s.inputs = std::move(inputs);
  s.gpus = std::move(gpus);
  s.replicas = replicas;
  return s;
}

dsl::PipelineSpec pipeline(std::vector<dsl::StageSpec> stages, int64_t steps) {
  dsl::PipelineSpec spec;
  spec.source_file = test_file;
  spec.run.name = "test";
  spec.run.steps = steps;
  spec.cluster.device = dsl::DeviceKind::auto_detect;
  for (size_t k = 0; k < stages.size(); ++k) {
    stages[k].pos = dsl::SourcePos{test_file, static_cast<int>(10 * k + 1), 1};
    for (size_t j = 0; j < stages[k].inputs.size(); ++j)
      stages[k].inputs[j].pos = dsl::SourcePos{test_file, static_cast<int>(10 * k + 2 + j), 10};
  }
  spec.stages = std::move(stages);
  return spec;
}

dsl::PortSpec port(const std::string& name, const std::string& type, bool optional) {
  return dsl::PortSpec{name, type, "", optional};
}

dsl::StageTypeSchema type_schema(const std::string& name, std::vector<dsl::PortSpec> inputs,
                                 std::vector<dsl::PortSpec> outputs, bool needs_device) {
  dsl::StageTypeSchema s;
  s.name = name;
  s.inputs = std::move(inputs);
  s.outputs = std::move(outputs);
  s.needs_device = needs_device;
  return s;
}

int stage_line(const dsl::PipelineSpec& spec, const std::string& stage) {
  const dsl::StageSpec* s = spec.find_stage(stage);
  if (!s) throw std::out_of_range("no stage " + stage);
  return s->pos.line;
}

int input_line(const dsl::PipelineSpec& spec, const std::string& stage, const std::string& port) {
  const dsl::StageSpec* s = spec.find_stage(stage);
  if (s)
    for (const auto& in : s->inputs)
      if (in.port == port) return in.pos.line;
  throw std::out_of_range("no input " + stage + "." + port);
}

std::filesystem::path fresh_temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("qerl_runtime_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

}  // namespace qerl::runtime::testing
