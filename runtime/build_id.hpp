// The identity of this qerl build: the git commit it was built from (with
// "-dirty" when the tree had changes) and the compile time. A coordinator
// and its workers must run the same build: the worker handshake compares
// this string and names both sides when they differ.
#pragma once

#include <string>

namespace qerl::runtime {

// "qerl 618ce49-dirty built Dec  6 2026 01:40:00"
std::string build_id();

}  // namespace qerl::runtime
