#include "ember/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include <fmt/format.h>

namespace ember {

namespace {

Status io_failure(const std::filesystem::path& path, std::string_view what, int error) {
  return {ErrorCode::io_error, fmt::format("{}: {}: {}", path.string(), what, std::strerror(error))};
}

// Closes the descriptor on every return path; the map stays valid after close.
class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {}
  ~Descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::filesystem::path& path) {
  // O_NONBLOCK so that a FIFO given by mistake is refused below instead of blocking open().
  Descriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    if (errno == ENOENT) return Status(ErrorCode::io_error, fmt::format("{}: no such file", path.string()));
    return io_failure(path, "cannot open", errno);
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return io_failure(path, "cannot read its size", errno);
  if (S_ISDIR(info.st_mode)) return Status(ErrorCode::io_error, fmt::format("{}: is a directory, not a file", path.string()));
  if (!S_ISREG(info.st_mode))
    return Status(ErrorCode::io_error, fmt::format("{}: not a regular file, so it cannot be mapped", path.string()));

  const auto size = static_cast<size_t>(info.st_size);
  const std::byte* data = nullptr;
  // mmap refuses a length of 0, and an empty file is still a valid (empty) file.
  if (size > 0) {
    void* mapped = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (mapped == MAP_FAILED) return io_failure(path, "cannot map", errno);
    data = static_cast<const std::byte*>(mapped);
  }
  std::unique_ptr<MappedFile> owner;
  try {
    owner.reset(new MappedFile(path, data, size));
  } catch (const std::bad_alloc&) {
    if (data != nullptr) ::munmap(const_cast<std::byte*>(data), size);
    return out_of_memory(fmt::format("{}: out of memory while mapping", path.string()));
  }
  try {
    return std::shared_ptr<MappedFile>(std::move(owner));
  } catch (const std::bad_alloc&) {  // owner still holds the map and unmaps it
    return out_of_memory(fmt::format("{}: out of memory while mapping", path.string()));
  }
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace ember
