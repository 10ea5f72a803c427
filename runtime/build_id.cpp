// build_id(): QERL_GIT_COMMIT comes from CMake (git describe at configure
// time); the compile time makes two builds of one dirty tree differ.
#include "runtime/build_id.hpp"

#ifndef QERL_GIT_COMMIT
#define QERL_GIT_COMMIT "unknown"
#endif

namespace qerl::runtime {

std::string build_id() { return std::string("qerl ") + QERL_GIT_COMMIT + " built " + __DATE__ + " " + __TIME__; }

}  // namespace qerl::runtime
