// qerl::Error — the one exception type that user-facing code throws.
// It carries a single, already-formatted line (file:line:col, key, stage,
// step, ...) so that qerl-run can print it as is and exit non-zero; nothing
// above the point of failure needs to add context or print a stack trace.
#pragma once

#include <stdexcept>
#include <string>

namespace qerl {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace qerl
