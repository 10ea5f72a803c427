// A stage's `inputs` table: port = "stage.port" | "stage" |
// { from = "stage.port", staleness = k }. Port names are checked against
// the stage type's input ports; whether the producer exists and port types
// match is the runtime graph's job. Private to dsl/.
#pragma once

#include <string>
#include <vector>

#include "dsl/detail/context.hpp"
#include "dsl/detail/node.hpp"
#include "dsl/pipeline_spec.hpp"
#include "dsl/schema.hpp"

namespace qerl::dsl::detail {

// Letters, digits, '_' and '-': what stage and port names in references use.
bool is_name_char(char c);

// `inputs` may be null (absent). `type` null = unknown stage type (ports are
// then not checked against it).
std::vector<InputSpec> read_stage_inputs(const Node* inputs, const Node& stage_node,
                                         const std::string& stage_path, const StageTypeSchema* type,
                                         Context& ctx);

}  // namespace qerl::dsl::detail
