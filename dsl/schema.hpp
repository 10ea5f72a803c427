// The schema of the pipeline language: every section, key, type, default,
// range and meaning, and the stage types (ports + stage-specific keys).
// Validation, `qerl-run --explain` and docs/pipeline-reference.md are all
// generated from this one description, so they cannot drift apart.
// Stage types are added at run time (built-ins by actors/, others by
// plugins), which is why Schema is a value and not a global.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <typeindex>
#include <utility>
#include <vector>

#include "dsl/value.hpp"

namespace qerl::dsl {

struct PipelineSpec;

struct KeySpec {
  std::string name;  // last path component, e.g. "lr"
  ValueKind kind = ValueKind::string;
  std::optional<Value> default_value;  // nullopt = the key is required
  std::string doc;                     // one or two sentences: meaning and unit
  std::optional<double> min;           // numeric range (inclusive unless *_exclusive)
  std::optional<double> max;
  bool min_exclusive = false;
  bool max_exclusive = false;
  std::vector<std::string> one_of;  // allowed strings (for string and string_list keys)
  bool single_string_ok = false;    // string_list keys: a bare "x" reads as ["x"]
  // Section keys only: stores a validated value into the typed spec.
  std::function<void(PipelineSpec&, const Value&)> assign;
  // Section keys only: reads the typed member back (to_toml, explain).
  std::function<Value(const PipelineSpec&)> read;
};

struct PortSpec {
  std::string name;  // "prompts"
  std::string type;  // readable payload type, e.g. "PromptBatch" (docs, --explain, errors)
  std::string doc;
  bool optional = false;  // input ports only: may be left unconnected
  // The C++ payload type (runtime::port<T>() sets it); the graph requires
  // both ends of an edge to carry the same one. Unset: a port declared by
  // name only (test doubles), which connects only to name-only ports of
  // the same `type`.
  std::optional<std::type_index> payload_type;

  // A constructor, not aggregate init, so that {name, type, doc, optional}
  // still reads as before without a missing-initializer warning.
  PortSpec() = default;
  PortSpec(std::string port_name, std::string type_name, std::string description, bool is_optional = false,
           std::optional<std::type_index> cpp_type = std::nullopt)
      : name(std::move(port_name)), type(std::move(type_name)), doc(std::move(description)),
        optional(is_optional), payload_type(cpp_type) {}
};

struct StageTypeSchema {
  std::string name;  // value of `uses`, e.g. "rollout", "reward.gsm8k"
  std::string doc;
  std::vector<PortSpec> inputs;
  std::vector<PortSpec> outputs;
  std::vector<KeySpec> keys;  // stage-specific keys (beyond uses/inputs/gpus/replicas)
  bool needs_device = false;  // true: must be given `gpus` (model-holding stages)

  const KeySpec* find_key(const std::string& key) const;
  const PortSpec* find_input(const std::string& port) const;
  const PortSpec* find_output(const std::string& port) const;
};

struct SectionSchema {
  std::string name;  // "algorithm"
  std::string doc;
  std::vector<KeySpec> keys;

  const KeySpec* find_key(const std::string& key) const;
};

class Schema {
 public:
  // All fixed sections of PipelineSpec ([run], [model], ...), no stage types.
  static Schema builtin();

  const std::vector<SectionSchema>& sections() const { return sections_; }
  const SectionSchema* find_section(const std::string& name) const;

  // Throws qerl::Error when a type of that name exists already.
  void add_stage_type(StageTypeSchema type);
  const StageTypeSchema* find_stage_type(const std::string& name) const;
  const std::vector<StageTypeSchema>& stage_types() const { return stage_types_; }

  // Keys every [stages.<name>] table accepts, for docs and suggestions.
  const std::vector<KeySpec>& common_stage_keys() const { return common_stage_keys_; }
  const KeySpec* find_common_stage_key(const std::string& key) const;

 private:
  std::vector<SectionSchema> sections_;
  std::vector<KeySpec> common_stage_keys_;
  std::vector<StageTypeSchema> stage_types_;
};

}  // namespace qerl::dsl
