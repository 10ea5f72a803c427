// Human-readable documentation generated from the Schema: the text of
// `qerl-run --explain [key]` and the Markdown of docs/pipeline-reference.md.
#pragma once

#include <string>

#include "dsl/schema.hpp"

namespace qerl::dsl {

// key: "" (overview of sections and stage types), a section ("aqn"), a key
// ("aqn.sigma_end"), "stages" (keys every stage accepts), or a stage type
// ("stages.rollout" or "rollout"). Unknown keys throw qerl::Error with a
// "did you mean" suggestion.
std::string explain(const Schema& schema, const std::string& key);

// The full reference page, deterministic for a given schema.
std::string reference_markdown(const Schema& schema);

}  // namespace qerl::dsl
