// Temp file + fsync + rename. The temp name is unique per process and call
// (pid, a per-process counter and random bits; O_EXCL retries on a clash)
// and created 0666 & ~umask, so the renamed file gets ordinary permissions.
#include "common/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "common/error.hpp"

namespace qerl {
namespace {

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) {
  throw Error(file.string() + ": " + what + ": " + std::strerror(errno));
}

void fsync_folder(const std::filesystem::path& folder) {
  const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: some filesystems do not allow it
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::filesystem::path target) : target_(std::move(target)) {
  static std::atomic<uint64_t> counter{0};
  std::random_device random;
  for (int attempt = 0; fd_ < 0; ++attempt) {
    const std::string suffix = std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                               std::to_string(random());
    temp_ = target_.parent_path() / ("." + target_.filename().string() + ".tmp-" + suffix);
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && (errno != EEXIST || attempt > 100)) fail(temp_, "cannot create temp file");
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_.c_str());
  }
}

void AtomicFileWriter::write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(temp_, "write failed");
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFileWriter::commit() {
  if (::fsync(fd_) != 0) fail(temp_, "fsync failed");
  if (::close(fd_) != 0) {
    fd_ = -1;
    ::unlink(temp_.c_str());
    fail(temp_, "close failed");
  }
  fd_ = -1;
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_.c_str());
    errno = err;
    fail(target_, "cannot rename temp file into place");
  }
  fsync_folder(target_.parent_path());
}

void write_file_atomically(const std::filesystem::path& target, std::string_view contents) {
  AtomicFileWriter writer(target);
  writer.write(contents);
  writer.commit();
}

}  // namespace qerl
