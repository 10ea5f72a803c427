// Replacing a file atomically: bytes go to a hidden temp file in the same
// folder, which is fsynced, renamed over the target, and the folder fsynced.
// Readers see the old file or the new one, never a torn write; a writer
// destroyed before commit() removes its temp file.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string_view>

namespace qerl {

class AtomicFileWriter {
 public:
  // Creates "<folder>/.<name>.tmp-XXXXXX" (the folder must exist).
  explicit AtomicFileWriter(std::filesystem::path target);
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();

  void write(const void* data, size_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  // fsync, rename over the target, fsync the folder. Throws qerl::Error.
  void commit();

  const std::filesystem::path& target() const { return target_; }

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
};

// One-shot form for small files (config.json, the shard index).
void write_file_atomically(const std::filesystem::path& target, std::string_view contents);

}  // namespace qerl
