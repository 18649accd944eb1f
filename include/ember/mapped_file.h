// A read-only memory map of a whole file. Model tensors are zero-copy views into it:
// Buffer::wrap(map) with the MappedFile as keep-alive, so the map lives while any
// tensor does.
//
// Risk that stays: if another process truncates the file while it is mapped, touching
// the lost pages raises SIGBUS. open() records the size, and readers check every
// offset against it, so only a file changed after opening can do this.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>

#include "ember/status.h"

namespace ember {

class MappedFile {
 public:
  // Errors name the path: missing, unreadable, a directory, or not mappable.
  static Result<std::shared_ptr<MappedFile>> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }

 private:
  MappedFile(std::filesystem::path path, const std::byte* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::filesystem::path path_;
  const std::byte* data_;
  size_t size_;
};

}  // namespace ember
