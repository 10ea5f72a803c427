// Stage defaults: a stage without setup work needs no setup().
#include "runtime/stage.hpp"

namespace qerl::runtime {

Stage::~Stage() = default;

void Stage::setup(const StageContext& /*context*/) {}

}  // namespace qerl::runtime
