// Run options for tests with the stage loggers silenced. Compiled outside
// the unity/LibTorch TU: spdlog's {fmt} clashes with LibTorch's (see
// actors/stage_log.hpp).
#include "tests/actors/quiet_log.hpp"

#include <spdlog/sinks/null_sink.h>

namespace qerl::actors::testing {

void silence_stage_logs(runtime::RunOptions& options) {
  options.log_sinks = {std::make_shared<spdlog::sinks::null_sink_mt>()};
}

}  // namespace qerl::actors::testing
