// How the qerl tools end on an exception: a qerl::Error is the user's input
// (one line, exit 2); anything else (LibTorch, filesystem) is ours (its
// first line, exit 1). Shared by qerl-scan, qerl-quantize, qerl-merge and
// qerl-model.
#pragma once

#include <cstdio>
#include <exception>
#include <string>

#include "common/error.hpp"

namespace qerl::tools {

inline constexpr int exit_internal_error = 1;
inline constexpr int exit_bad_input = 2;

// Runs body() and returns its exit status, or reports an exception as above.
template <class Body>
int report_errors(const char* tool, Body&& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s\n", tool, e.what());
    return exit_bad_input;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    std::fprintf(stderr, "%s: internal error: %s\n", tool, what.substr(0, what.find('\n')).c_str());
    return exit_internal_error;
  }
}

}  // namespace qerl::tools
