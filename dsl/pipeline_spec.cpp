// PipelineSpec lookups used by the runtime's graph builder.
#include "dsl/pipeline_spec.hpp"

namespace qerl::dsl {

const StageSpec* PipelineSpec::find_stage(const std::string& name) const {
  for (const StageSpec& stage : stages)
    if (stage.name == name) return &stage;
  return nullptr;
}

}  // namespace qerl::dsl

namespace qerl::dsl {

const SourcePos& StageSpec::pos_of(const std::string& key) const {
  auto it = key_pos.find(key);
  return it == key_pos.end() ? pos : it->second;
}

}  // namespace qerl::dsl
