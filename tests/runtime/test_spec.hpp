// Test helpers: PipelineSpecs built in code (no TOML), with made-up source
// positions (stage k at line 10k+1, its inputs on the following lines) so
// that tests can check that errors point at the right declaration.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dsl/pipeline_spec.hpp"
#include "dsl/schema.hpp"

namespace qerl::runtime::testing {

inline constexpr const char* test_file = "test.toml";

// `from` is "stage.port" or "stage".
dsl::InputSpec input(const std::string& port, const std::string& from,
                     std::optional<int64_t> staleness = std::nullopt);
dsl::StageSpec stage(const std::string& name, const std::string& uses,
                     std::vector<dsl::InputSpec> inputs = {}, std::vector<int64_t> gpus = {},
                     int64_t replicas = 1);
dsl::PipelineSpec pipeline(std::vector<dsl::StageSpec> stages, int64_t steps = 3);

dsl::PortSpec port(const std::string& name, const std::string& type, bool optional = false);
dsl::StageTypeSchema type_schema(const std::string& name, std::vector<dsl::PortSpec> inputs,
                                 std::vector<dsl::PortSpec> outputs, bool needs_device = false);

// The declaration line of a stage / an input, as assigned by pipeline().
int stage_line(const dsl::PipelineSpec& spec, const std::string& stage);
int input_line(const dsl::PipelineSpec& spec, const std::string& stage, const std::string& port);

// A fresh, empty folder under the system temp dir (unique per process and name).
std::filesystem::path fresh_temp_dir(const std::string& name);

}  // namespace qerl::runtime::testing
