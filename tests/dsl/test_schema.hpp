// The schema the DSL tests load against: the built-in sections plus five
// stand-in stage types shaped like the real ones (data -> rollout -> reward
// -> learner -> weight_sync -> rollout), so dsl/ is tested without actors/.
#pragma once

#include "dsl/schema.hpp"

namespace qerl::dsl::testing {

Schema test_schema();

// Folder holding data/ and malformed/ (set by CMake).
std::string test_dir();

}  // namespace qerl::dsl::testing
