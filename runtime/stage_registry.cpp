// StageRegistry: a name -> StageType map with duplicate detection.
#include "runtime/stage_registry.hpp"

#include <algorithm>

#include "common/error.hpp"

namespace qerl::runtime {

StageRegistry& StageRegistry::global() {
  static StageRegistry registry;
  return registry;
}

void StageRegistry::add(StageType type) {
  const std::string name = type.schema.name;
  if (name.empty()) throw Error("cannot register a stage type without a name");
  if (types_.count(name)) throw Error("stage type '" + name + "' is registered twice");
  types_.emplace(name, std::move(type));
}

const StageType* StageRegistry::find(const std::string& name) const {
  auto it = types_.find(name);
  return it == types_.end() ? nullptr : &it->second;
}

std::vector<std::string> StageRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, type] : types_) out.push_back(name);
  return out;
}

dsl::Schema StageRegistry::schema() const {
  dsl::Schema schema = dsl::Schema::builtin();
  for (const auto& [name, type] : types_) schema.add_stage_type(type.schema);
  return schema;
}

bool StageRegistry::has_plugin(const std::string& path) const {
  return std::find(plugins_.begin(), plugins_.end(), path) != plugins_.end();
}

void StageRegistry::note_plugin(const std::string& path) {
  if (!has_plugin(path)) plugins_.push_back(path);
}

}  // namespace qerl::runtime
