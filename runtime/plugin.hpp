// Writing a plugin: a shared library that adds stage types. Define its entry
// point with QERL_PLUGIN, which also exports the ABI version the plugin was
// compiled against, so a plugin built for another qerl fails with one clear
// line instead of crashing:
//
//   QERL_PLUGIN(registry) { registry.add(my_stage_type()); }
#pragma once

#include "runtime/stage_registry.hpp"

namespace qerl::runtime {

// Bump whenever a type plugins see (Stage, StageContext, StepInput,
// StepOutput, Payload, StageType, StageRegistry, dsl schema structs)
// changes layout or virtual functions.
inline constexpr int plugin_abi_version = 1;

}  // namespace qerl::runtime

// The two symbols the plugin loader looks up (extern "C": unmangled names).
#define QERL_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

#define QERL_PLUGIN(registry)                                                   \
  QERL_PLUGIN_EXPORT int qerl_plugin_abi_version() {                            \
    return ::qerl::runtime::plugin_abi_version;                                 \
  }                                                                             \
  QERL_PLUGIN_EXPORT void qerl_register_stages(::qerl::runtime::StageRegistry& registry)
