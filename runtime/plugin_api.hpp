// The public plugin API: what a stage type is made of, in one include. The
// built-in stages (actors/builtin_stages.cpp) are declared with exactly
// these helpers, so a plugin's stage type is written the same way:
//
//   dsl::StageTypeSchema s;
//   s.name = "example.dapo_filter";
//   s.inputs = {port<actors::RolloutBatch>("samples", "responses to filter")};
//   s.keys = {at_least(key("tolerance", dsl::ValueKind::floating, 0.0, "Reward spread ..."), 0)};
//   registry.add(StageType{s, [] { return std::make_unique<MyStage>(); }});
//
// A port records its payload's C++ type; Graph::build refuses an edge whose
// two ends carry different types, naming both stages, ports and types.
// Keys are read in Stage::setup() with context.stage->option<T>("name").
#pragma once

#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "dsl/pipeline_spec.hpp"
#include "dsl/schema.hpp"
#include "runtime/payload.hpp"
#include "runtime/plugin.hpp"
#include "runtime/stage.hpp"
#include "runtime/stage_registry.hpp"

namespace qerl::runtime {

// A stage key with its default and a one- or two-sentence doc (meaning and
// unit). The default's alternative must match `kind` (int64_t for integer,
// double for floating, std::string, std::vector<std::string>, ...).
inline dsl::KeySpec key(std::string name, dsl::ValueKind kind, dsl::Value default_value, std::string doc) {
  dsl::KeySpec k;
  k.name = std::move(name);
  k.kind = kind;
  k.default_value = std::move(default_value);
  k.doc = std::move(doc);
  return k;
}

// A key the pipeline must set (no default).
inline dsl::KeySpec required_key(std::string name, dsl::ValueKind kind, std::string doc) {
  dsl::KeySpec k;
  k.name = std::move(name);
  k.kind = kind;
  k.doc = std::move(doc);
  return k;
}

// A numeric key limited to [min, max] (both inclusive).
inline dsl::KeySpec ranged(dsl::KeySpec k, double min, double max) {
  k.min = min;
  k.max = max;
  return k;
}

// A numeric key at least `min` (inclusive), with no upper limit.
inline dsl::KeySpec at_least(dsl::KeySpec k, double min) {
  k.min = min;
  return k;
}

// A string (or string-list) key limited to the `allowed` spellings.
inline dsl::KeySpec choice(dsl::KeySpec k, std::vector<std::string> allowed) {
  k.one_of = std::move(allowed);
  return k;
}

// A port carrying payload type T (a class derived from Payload). Optional
// input ports may be left unconnected; output ports ignore `optional`.
template <class T>
dsl::PortSpec port(std::string name, std::string doc, bool optional = false) {
  return dsl::PortSpec(std::move(name), short_type_name(typeid(T)), std::move(doc), optional,
                       payload_type<T>());
}

}  // namespace qerl::runtime
