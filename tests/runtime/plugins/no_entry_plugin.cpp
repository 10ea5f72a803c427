// Test-only shared library without qerl's entry points: a valid .so that is
// not a plugin.
extern "C" __attribute__((visibility("default"))) int not_a_qerl_plugin() { return 1; }
