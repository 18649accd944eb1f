#include "ember/buffer.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cerrno>
#include <new>

#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>

namespace ember {

namespace {

// Buffers of at least one huge page start on one and ask the kernel for huge pages: a
// kernel streaming a weight matrix otherwise takes a TLB miss every 4 KiB, and where
// transparent huge pages are set to "madvise" (Ubuntu's default) only advised memory
// gets them (docs/PERFORMANCE.md, ninth session: +15% q4_0 decode). The advice is a hint;
// a kernel without huge pages refuses it and the buffer works the same.
constexpr size_t kHugePageBytes = size_t{2} << 20;

}  // namespace

Buffer::Buffer(std::byte* data, size_t bytes, size_t alignment, bool owned, bool writable,
               std::shared_ptr<const void> keep_alive)
    : data_(data), bytes_(bytes), alignment_(alignment), owned_(owned), writable_(writable),
      keep_alive_(std::move(keep_alive)) {}

Buffer::~Buffer() {
  if (owned_) std::free(data_);
}

Result<std::unique_ptr<Buffer>> Buffer::allocate_unique(size_t bytes, size_t alignment) {
  if (alignment < kBufferAlignment || (alignment & (alignment - 1)) != 0)
    return invalid_argument(fmt::format("buffer alignment {} is not a power of two of at least {}", alignment,
                                        kBufferAlignment));
  if (bytes > (size_t{1} << 48)) return out_of_memory(fmt::format("buffer of {} bytes is larger than any host", bytes));
  const bool huge = bytes >= kHugePageBytes;
  if (huge) alignment = std::max(alignment, kHugePageBytes);
  // aligned_alloc wants a size that is a multiple of the alignment; zero bytes still gets a
  // distinct, valid pointer so empty tensors need no special case.
  const size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* memory = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
  if (memory == nullptr) return out_of_memory(fmt::format("cannot allocate a host buffer of {} bytes", bytes));
  if (huge) static_cast<void>(::madvise(memory, bytes / kHugePageBytes * kHugePageBytes, MADV_HUGEPAGE));
  return std::unique_ptr<Buffer>(
      new Buffer(static_cast<std::byte*>(memory), bytes, alignment, /*owned=*/true, /*writable=*/true, nullptr));
}

Result<std::shared_ptr<Buffer>> Buffer::allocate(size_t bytes, size_t alignment) {
  auto buffer = allocate_unique(bytes, alignment);
  if (!buffer) return buffer.status();
  return std::shared_ptr<Buffer>(std::move(buffer.value()));
}

std::shared_ptr<Buffer> Buffer::wrap(std::byte* data, size_t bytes, std::shared_ptr<const void> keep_alive,
                                     bool writable) {
  size_t alignment = kBufferAlignment;
  while (alignment > 1 && reinterpret_cast<uintptr_t>(data) % alignment != 0) alignment /= 2;
  return std::shared_ptr<Buffer>(new Buffer(data, bytes, alignment, /*owned=*/false, writable, std::move(keep_alive)));
}

std::shared_ptr<Buffer> Buffer::wrap_file_pages(std::byte* data, size_t bytes, std::shared_ptr<const void> keep_alive) {
  auto buffer = wrap(data, bytes, std::move(keep_alive), /*writable=*/false);
  buffer->file_pages_ = true;
  return buffer;
}

Result<std::shared_ptr<Buffer>> Buffer::rearranged(uint32_t arrangement, const Rearrange& make) {
  std::lock_guard lock(rearranged_mutex_);
  if (rearranged_ != nullptr && arrangement_ == arrangement) return rearranged_;
  auto bytes = host_read();
  if (!bytes) return bytes.status();
  auto copy = make(bytes.value());
  if (!copy) return copy.status();
  if (locked_ && ::mlock(copy.value()->data_, copy.value()->bytes_) != 0)
    return out_of_memory(fmt::format("cannot lock a rearranged copy of {} bytes in memory ({})",
                                     copy.value()->bytes_, std::strerror(errno)));
  if (file_pages_) {
    // Only whole pages inside this buffer: the pages at its ends may hold a neighbour's
    // bytes. Dropping pages of a read-only file mapping loses nothing.
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = (reinterpret_cast<uintptr_t>(data_) + page - 1) / page * page;
    const auto end = (reinterpret_cast<uintptr_t>(data_) + bytes_) / page * page;
    if (end > begin) {
      ::munlock(reinterpret_cast<void*>(begin), end - begin);
      ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
    }
  }
  arrangement_ = arrangement;
  rearranged_ = std::move(copy.value());
  return rearranged_;
}

Result<const std::byte*> Buffer::host_read() {
  if (residency_ == Residency::device) {
    EMBER_RETURN_IF_ERROR(mirror_->download(data_, bytes_));
    residency_ = Residency::both;
  }
  return static_cast<const std::byte*>(data_);
}

void Buffer::take_device_write(const std::byte* written) {
  std::memcpy(data_, written, bytes_);
  residency_ = Residency::both;
}

Result<std::byte*> Buffer::host_write() {
  if (!writable_) return invalid_argument("buffer is read-only (a mapped file): copy the tensor before writing");
  if (residency_ == Residency::device) EMBER_RETURN_IF_ERROR(mirror_->download(data_, bytes_));
  residency_ = Residency::host;
  return data_;
}

void Buffer::attach_device(std::unique_ptr<DeviceMirror> mirror, Residency current) {
  mirror_ = std::move(mirror);
  residency_ = current;
}

Status Buffer::ensure_device_current() {
  if (mirror_ == nullptr) return internal_error("buffer has no device copy to bring up to date");
  if (residency_ == Residency::host) {
    EMBER_RETURN_IF_ERROR(mirror_->upload(data_, bytes_));
    residency_ = Residency::both;
  }
  return {};
}

}  // namespace ember
