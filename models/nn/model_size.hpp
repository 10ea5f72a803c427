// How much memory a model needs before it is built: the parameter count a
// ModelConfig implies (from the config alone, nothing allocated) against the
// memory this process can still get. CausalLM's constructor checks it, so an
// absurd config.json fails with one line naming its sizes rather than deep in
// the allocator (or, worse, after minutes of swapping).
#pragma once

#include <optional>

#include "models/nn/model_config.hpp"

namespace qerl::models {

// The number of parameters CausalLM(config) registers (equal to
// count_parameters(lm).total). A double: absurd configs overflow int64.
double parameter_count(const ModelConfig& config);

// Bytes this process can still allocate: MemAvailable + SwapFree from
// /proc/meminfo, capped by its cgroup v2 memory.max (minus memory.current);
// nullopt when neither can be read (the check is then skipped).
std::optional<double> available_memory_bytes();

// Returns `config`, or throws qerl::Error ("config.json: ...", one line with
// the sizes) when building it — in float32, as CausalLM's constructor does
// before any cast — needs more than `available` bytes (default: what
// available_memory_bytes() says).
ModelConfig require_memory_for(ModelConfig config, std::optional<double> available = available_memory_bytes());

}  // namespace qerl::models
