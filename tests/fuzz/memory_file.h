// An in-memory file with a path, so fuzz inputs reach the readers through the same
// open-and-map path as files on disk, without touching the disk on every run.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace ember::fuzz {

class MemoryFile {
 public:
  MemoryFile() : fd_(::memfd_create("ember-fuzz-input", MFD_CLOEXEC)) {
    if (fd_ < 0) std::abort();
  }
  ~MemoryFile() { ::close(fd_); }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  // Replaces the contents with `data`; returns the path that opens them.
  std::filesystem::path hold(const uint8_t* data, size_t size) {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    size_t written = 0;
    while (written < size) {
      const ssize_t step = ::pwrite(fd_, data + written, size - written, static_cast<off_t>(written));
      if (step <= 0) std::abort();
      written += static_cast<size_t>(step);
    }
    return "/proc/self/fd/" + std::to_string(fd_);
  }

 private:
  int fd_;
};

}  // namespace ember::fuzz
