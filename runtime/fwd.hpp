// Forward declarations of the runtime's public types, so that headers which
// only pass them around (tools/, actors/) need not include their definitions.
#pragma once

#include <memory>

namespace qerl::runtime {

class Payload;
using PayloadPtr = std::shared_ptr<const Payload>;

class Stage;
struct StageContext;
struct StepInput;
struct StepOutput;
struct StageType;
class StageRegistry;
class Graph;
struct Placement;
struct StepRecord;
struct RunOptions;
struct RunResult;

}  // namespace qerl::runtime
