// The builtin:arith generator: GSM8K-style multi-step word problems over one
// person's count of things, with a worked solution of "a op b = c" lines and
// a last line "#### N". Problem `index` of `seed` is a pure function of
// (options, seed, index): a counter-based RNG, no state between calls.
#pragma once

#include <cstdint>

#include "tasks/arith_spec.hpp"
#include "tasks/problem.hpp"

namespace qerl::tasks {

// Throws qerl::Error if the options are invalid or cannot produce a problem
// (e.g. ops=- with many steps and no negatives: the count runs out).
Problem generate_arith_problem(const ArithOptions& options, uint64_t seed, int64_t index);

}  // namespace qerl::tasks
