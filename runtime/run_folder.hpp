// The run folder holds only complete files: anything written whole
// (resolved.toml, graph.dot, reports, checkpoint manifests) goes through
// atomic_write_file, so a crash leaves either the old file or the new one.
#pragma once

#include <filesystem>
#include <string>

namespace qerl::runtime {

// Writes `content` to a temporary file next to `path`, fsyncs it, renames it
// over `path` and fsyncs the folder. Throws qerl::Error naming the path.
void atomic_write_file(const std::filesystem::path& path, const std::string& content);

}  // namespace qerl::runtime
