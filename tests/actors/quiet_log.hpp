// Silencing stage logs in tests (see quiet_log.cpp for why it is separate).
#pragma once

#include "runtime/driver.hpp"

namespace qerl::actors::testing {

void silence_stage_logs(runtime::RunOptions& options);

}  // namespace qerl::actors::testing
