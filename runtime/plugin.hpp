// Writing a plugin: a shared library that adds stage types. Define its entry
// point with QERL_PLUGIN, which also exports the ABI version the plugin was
// compiled against, so a plugin built for another qerl fails with one clear
// line instead of crashing:
//
//   QERL_PLUGIN(registry) { registry.add(my_stage_type()); }
//
// The helpers that declare a stage type (key, ranged, choice, port<T>) are
// in runtime/plugin_api.hpp, which includes this header.
#pragma once

#include "runtime/plugin_abi_version.hpp"  // generated: runtime::plugin_abi_version
#include "runtime/stage_registry.hpp"

// plugin_abi_version is not written by hand: CMake (cmake/QerlPluginAbi.cmake)
// derives it at configure time from the SHA-256 of every header a plugin
// compiles against (runtime/plugin_api.hpp, actors/payloads.hpp and what
// they include: PipelineSpec, the schema, Stage, Payload, StageRegistry),
// comments and whitespace aside. Any change to those types changes it.

// The two symbols the plugin loader looks up (extern "C": unmangled names).
#define QERL_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

#define QERL_PLUGIN(registry)                                                   \
  QERL_PLUGIN_EXPORT int qerl_plugin_abi_version() {                            \
    return ::qerl::runtime::plugin_abi_version;                                 \
  }                                                                             \
  QERL_PLUGIN_EXPORT void qerl_register_stages(::qerl::runtime::StageRegistry& registry)
