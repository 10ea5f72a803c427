// A whole file memory-mapped copy-on-write (MAP_PRIVATE, readable and
// writable): tensors that alias the mapping may be modified in place
// without touching the file. Shared through std::shared_ptr so that every
// tensor view keeps the mapping alive; unmapped when the last one goes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

namespace qerl::models {

class MappedFile {
 public:
  // Throws qerl::Error naming the file when it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& file);

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  char* data() const { return data_; }  // page-aligned; nullptr for an empty file
  uint64_t size() const { return size_; }
  std::string_view bytes() const { return {data_, static_cast<size_t>(size_)}; }

 private:
  MappedFile(char* data, uint64_t size) : data_(data), size_(size) {}

  char* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace qerl::models
