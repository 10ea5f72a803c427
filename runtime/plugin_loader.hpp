// Loading plugins (`plugins = ["libmy_stages.so"]` in a pipeline): dlopen the
// library, check the ABI version it exports, and let it register its stage
// types. Must run before the pipeline is loaded, since the loader validates
// `uses` against the registry's schema.
#pragma once

#include <string>

namespace qerl::runtime {

class StageRegistry;

// Throws qerl::Error naming the path and what went wrong: no such file, not
// a loadable shared object, not a qerl plugin (missing symbol), built for
// another ABI version, or a stage type that is registered already. On error
// the registry is unchanged. Loading the same path twice is a no-op.
// A loaded library stays loaded for the life of the process.
void load_plugin(const std::string& path, StageRegistry& registry);

}  // namespace qerl::runtime
