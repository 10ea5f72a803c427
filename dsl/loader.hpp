// Loading a pipeline: TOML text -> (extends chain merged) -> --set overrides
// applied (typed like the key they override) -> validated against a Schema ->
// PipelineSpec. All errors of a file are collected and thrown together as a
// PipelineError; nothing is printed here.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/pipeline_spec.hpp"
#include "dsl/schema.hpp"

namespace qerl::dsl {

// Overrides are "section.key=value" (e.g. "algorithm.lr=2e-6",
// "stages.rollout.gpus=[0,1]", "quantization.ignore=[\"lm_head\"]"); the value
// is TOML, with bare words accepted as strings for string keys.
using Overrides = std::vector<std::string>;

// The `plugins` list after extends + overrides, as absolute paths (relative
// entries resolve against the directory of the file that names them).
// Plugins must be loaded before load_pipeline because they add stage types.
std::vector<std::string> read_plugin_list(const std::string& path, const Overrides& overrides);

PipelineSpec load_pipeline(const std::string& path, const Overrides& overrides,
                           const Schema& schema);

struct LoadOptions {
  // When set, `extends` of a text pipeline resolves against this directory
  // instead of the current one, and no base may lie outside it (the fuzzer
  // uses this so that arbitrary input cannot read arbitrary files).
  std::optional<std::string> extends_root;
};

// Same, from text held in memory; `name` stands in for the file name in
// diagnostics, and `extends` resolves against the current directory.
PipelineSpec load_pipeline_text(std::string_view text, const std::string& name,
                                const Overrides& overrides, const Schema& schema,
                                const LoadOptions& options = {});

// Relative model.path, model.tokenizer and data.source (a file path) come out
// absolute, resolved against the file that set them, so the spec does not
// depend on where it was loaded from.
//
// The resolved pipeline as TOML (every key, defaults filled in, no extends):
// what qerl-run writes to <out_dir>/resolved.toml. Loading it back yields an
// equal spec (to_toml of both is identical).
std::string to_toml(const PipelineSpec& spec, const Schema& schema);

}  // namespace qerl::dsl
