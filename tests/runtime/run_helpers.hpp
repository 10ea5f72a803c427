// Test helpers for driver runs: build graph + placement and run with quiet
// logs and a generous no-progress guard (a broken test fails, never hangs);
// read metrics.jsonl back.
#pragma once

#include <spdlog/sinks/null_sink.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/driver.hpp"
#include "runtime/graph.hpp"
#include "runtime/placement.hpp"
#include "runtime/stage_registry.hpp"

namespace qerl::runtime::testing {

inline RunOptions quiet_options(const std::string& out_dir = "") {
  RunOptions options;
  options.out_dir = out_dir;
  options.log_sinks = {std::make_shared<spdlog::sinks::null_sink_mt>()};
  options.no_progress_timeout_s = 60;
  options.shutdown_timeout_s = 30;
  return options;
}

inline RunResult run_spec(const dsl::PipelineSpec& spec, const StageRegistry& registry,
                          const RunOptions& options, int physical_gpus = 0) {
  const Graph graph = Graph::build(spec, registry);
  const Placement placement = place(spec, graph, registry, physical_gpus);
  return run_pipeline(spec, graph, placement, registry, options);
}

// Every line of a JSONL file, parsed; a line that does not parse fails the
// caller's check through the exception.
inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path,
                                              bool* ends_with_newline = nullptr) {
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (ends_with_newline) *ends_with_newline = all.empty() || all.back() == '\n';
  std::vector<nlohmann::json> out;
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\n', start);
    if (end == std::string::npos) end = all.size();
    out.push_back(nlohmann::json::parse(all.substr(start, end - start)));
    start = end + 1;
  }
  return out;
}

}  // namespace qerl::runtime::testing
