// The validation passes that turn the merged document into a PipelineSpec:
// fixed sections and `plugins`, then stages, then derived defaults and
// cross-field checks. Each reports every problem to the Context and keeps
// going, so one load shows all mistakes. Private to dsl/.
#pragma once

#include <string>
#include <vector>

#include "dsl/detail/context.hpp"
#include "dsl/detail/node.hpp"
#include "dsl/pipeline_spec.hpp"
#include "dsl/schema.hpp"

namespace qerl::dsl::detail {

// `plugins = [...]` as absolute paths (relative to the file that names them).
std::vector<std::string> read_plugins(const Node& root, Context& ctx);

// Defaults for every section key, then the document's sections and plugins;
// unknown sections and keys are errors with a suggestion.
void read_sections(const Node& root, const Schema& schema, PipelineSpec& spec, Context& ctx);

// [stages.<name>] tables, in declaration order.
void read_stages(const Node& root, const Schema& schema, PipelineSpec& spec, Context& ctx);

// Fills values derived from others (run.name, run.out_dir,
// quantization.group_size, absolute model/data paths) and checks settings
// that contradict each other.
void finish_and_cross_check(const Node& root, PipelineSpec& spec, Context& ctx);

}  // namespace qerl::dsl::detail
