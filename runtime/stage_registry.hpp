// StageRegistry: the stage types a pipeline may `use` — built-ins (actors/)
// and those added by plugins — each with its schema (ports, keys) and a
// factory. A type may be declared without a factory yet: pipelines using it
// still validate and --dry-run, but a real run stops before spawning.
// The process-wide registry (global()) is, with the plugin list, the only
// global mutable state of qerl; tests build their own registries.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dsl/schema.hpp"
#include "runtime/stage.hpp"

namespace qerl::runtime {

struct StageType {
  dsl::StageTypeSchema schema;
  std::function<std::unique_ptr<Stage>()> make;  // empty = declared, not implemented yet

  bool implemented() const { return static_cast<bool>(make); }
};

class StageRegistry {
 public:
  StageRegistry() = default;
  StageRegistry(const StageRegistry&) = delete;
  StageRegistry& operator=(const StageRegistry&) = delete;

  static StageRegistry& global();

  // Throws qerl::Error when a type of that name exists already (or the name is empty).
  void add(StageType type);
  const StageType* find(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted

  // Schema::builtin() plus every registered stage type: what the loader
  // validates pipelines against.
  dsl::Schema schema() const;

  // Plugins already loaded into this registry (absolute paths), so that a
  // plugin named twice registers its types once.
  bool has_plugin(const std::string& path) const;
  void note_plugin(const std::string& path);
  const std::vector<std::string>& plugins() const { return plugins_; }

 private:
  std::map<std::string, StageType> types_;
  std::vector<std::string> plugins_;
};

}  // namespace qerl::runtime
