// dlopen-based plugin loading. The plugin registers into a scratch registry
// first, so a failing plugin leaves the real registry untouched.
#include "runtime/plugin_loader.hpp"

#include <dlfcn.h>

#include <filesystem>
#include <system_error>

#include "common/error.hpp"
#include "runtime/plugin.hpp"
#include "runtime/stage_registry.hpp"

namespace qerl::runtime {
namespace {

using abi_version_fn = int (*)();
using register_fn = void (*)(StageRegistry&);

// Closes the library unless released (on success it stays loaded for good:
// stage objects and their vtables live in it).
struct LibraryHandle {
  void* handle = nullptr;
  ~LibraryHandle() {
    if (handle) dlclose(handle);
  }
  void* release() {
    void* h = handle;
    handle = nullptr;
    return h;
  }
};

std::string last_dl_error() {
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
}

}  // namespace

void load_plugin(const std::string& path, StageRegistry& registry) {
  namespace fs = std::filesystem;
  const std::string where = "plugin '" + path + "'";
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(where + ": no such file");
  if (!fs::is_regular_file(path, ec)) throw Error(where + ": not a regular file");
  const std::string key = fs::canonical(path, ec).string();
  if (registry.has_plugin(key)) return;

  dlerror();  // clear
  LibraryHandle lib{dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)};
  if (!lib.handle) throw Error(where + ": cannot load it as a shared library: " + last_dl_error());

  auto version = reinterpret_cast<abi_version_fn>(dlsym(lib.handle, "qerl_plugin_abi_version"));
  auto register_stages = reinterpret_cast<register_fn>(dlsym(lib.handle, "qerl_register_stages"));
  if (!version || !register_stages)
    throw Error(where + ": not a qerl plugin (no exported symbol '" +
                std::string(version ? "qerl_register_stages" : "qerl_plugin_abi_version") +
                "'; define its entry point with QERL_PLUGIN from runtime/plugin.hpp)");
  const int plugin_abi = version();
  if (plugin_abi != plugin_abi_version)
    throw Error(where + ": built for plugin ABI version " + std::to_string(plugin_abi) +
                ", but this qerl has version " + std::to_string(plugin_abi_version) +
                "; rebuild the plugin against this qerl");

  StageRegistry scratch;
  try {
    register_stages(scratch);
  } catch (const std::exception& e) {
    throw Error(where + ": registering its stage types failed: " + e.what());
  } catch (...) {
    throw Error(where + ": registering its stage types failed (unknown exception)");
  }
  for (const auto& name : scratch.names())
    if (registry.find(name))
      throw Error(where + ": stage type '" + name + "' is already registered " +
                  "(by a built-in or another plugin)");
  for (const auto& name : scratch.names()) registry.add(*scratch.find(name));
  registry.note_plugin(key);
  lib.release();
}

}  // namespace qerl::runtime
