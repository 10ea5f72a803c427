// Stage defaults: a stage without setup work or state to checkpoint
// overrides none of these.
#include "runtime/stage.hpp"

namespace qerl::runtime {

Stage::~Stage() = default;

void Stage::setup(const StageContext& /*context*/) {}

void Stage::save_state(const std::filesystem::path& /*dir*/) {}

void Stage::load_state(const std::filesystem::path& /*dir*/) {}

std::vector<RestoredOutput> Stage::restored_outputs() { return {}; }

}  // namespace qerl::runtime
