// Test-only plugin built for a different plugin ABI version: the loader must
// refuse it before calling its registration function.
#include "runtime/stage_registry.hpp"

extern "C" __attribute__((visibility("default"))) int qerl_plugin_abi_version() { return 999; }

extern "C" __attribute__((visibility("default"))) void qerl_register_stages(
    qerl::runtime::StageRegistry& registry) {
  qerl::dsl::StageTypeSchema s;
  s.name = "test.bad_abi";
  registry.add(qerl::runtime::StageType{s, {}});
}
