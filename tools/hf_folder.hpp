// Tools that write an HF checkpoint folder from another one (qerl-quantize,
// qerl-merge): the output folder's rules (absent or empty, never the input
// folder) and the copy of the input's non-weight files (tokenizer.json,
// tokenizer_config.json, generation_config.json, ...) byte for byte.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

#include "common/atomic_file.hpp"
#include "common/error.hpp"

namespace qerl::tools {

// Throws qerl::Error when `in` is not a folder, or `out` is `in`, is not a
// folder or is not empty. `in_label` names the input in the message
// ("IN_DIR", "BASE_DIR").
inline void check_output_folder(const std::filesystem::path& in, const std::filesystem::path& out,
                                const std::string& in_label) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(in)) throw Error(in.string() + ": no such folder");
  const std::string same = out.string() + ": OUT_DIR is " + in_label + "; write to a new folder";
  std::error_code ec;
  if (fs::exists(out, ec)) {
    if (fs::equivalent(in, out, ec)) throw Error(same);
    if (!fs::is_directory(out)) throw Error(out.string() + ": exists and is not a folder");
    if (!fs::is_empty(out)) throw Error(out.string() + ": exists and is not empty");
  } else if (fs::weakly_canonical(in, ec) == fs::weakly_canonical(out, ec)) {
    throw Error(same);
  }
}

// config.json and the weights in any of HF's formats: what a tool rewrites.
inline bool is_weight_file(const std::filesystem::path& p) {
  const std::string name = p.filename().string();
  const auto ends = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return name == "config.json" || ends(".safetensors") || ends(".safetensors.index.json") || ends(".bin") ||
         ends(".bin.index.json") || ends(".pt") || ends(".pth");
}

inline std::string read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file.string() + ": cannot read");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Copies every regular file of `in` that is not a weight file into `out`
// (atomically, byte for byte); returns how many.
inline int64_t copy_other_files(const std::filesystem::path& in, const std::filesystem::path& out) {
  int64_t copied = 0;
  for (const auto& entry : std::filesystem::directory_iterator(in)) {
    if (!entry.is_regular_file() || is_weight_file(entry.path())) continue;
    write_file_atomically(out / entry.path().filename(), read_bytes(entry.path()));
    ++copied;
  }
  return copied;
}

}  // namespace qerl::tools
