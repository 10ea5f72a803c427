// Schema lookups and the registry of stage types. Stage types arrive at run
// time (built-ins from actors/, others from plugins); a second type of the
// same name is an error so a plugin cannot silently shadow a built-in.
#include "dsl/schema.hpp"

#include "common/error.hpp"

namespace qerl::dsl {

namespace {

template <class T>
const T* find_named(const std::vector<T>& items, const std::string& name) {
  for (const T& item : items)
    if (item.name == name) return &item;
  return nullptr;
}

}  // namespace

const KeySpec* SectionSchema::find_key(const std::string& key) const {
  return find_named(keys, key);
}

const KeySpec* StageTypeSchema::find_key(const std::string& key) const {
  return find_named(keys, key);
}

const PortSpec* StageTypeSchema::find_input(const std::string& port) const {
  return find_named(inputs, port);
}

const PortSpec* StageTypeSchema::find_output(const std::string& port) const {
  return find_named(outputs, port);
}

const SectionSchema* Schema::find_section(const std::string& name) const {
  return find_named(sections_, name);
}

const StageTypeSchema* Schema::find_stage_type(const std::string& name) const {
  return find_named(stage_types_, name);
}

const KeySpec* Schema::find_common_stage_key(const std::string& key) const {
  return find_named(common_stage_keys_, key);
}

void Schema::add_stage_type(StageTypeSchema type) {
  if (type.name.empty()) throw Error("stage type with an empty name");
  if (find_stage_type(type.name))
    throw Error("stage type '" + type.name + "' is registered twice");
  for (const KeySpec& key : type.keys) {
    if (key.name == "uses" || key.name == "inputs" || key.name == "gpus" || key.name == "replicas" ||
        key.name == "worker")
      throw Error("stage type '" + type.name + "': key '" + key.name +
                  "' is common to every stage and cannot be redeclared");
  }
  stage_types_.push_back(std::move(type));
}

}  // namespace qerl::dsl
