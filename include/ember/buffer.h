// Buffer: a block of bytes that a tensor views, and where those bytes currently live.
//
// Residency: a buffer's bytes have a host home and, once the GPU module attaches one, a
// device home. Each side is valid or stale. Nobody outside this class touches raw
// memory without saying why: host_read() makes the host copy valid (downloading if the
// device holds the newest bytes) and host_write() additionally marks the device copy
// stale. So the code that uses tensors never asks where the bytes are.
//
// Threads: one buffer may be read by many threads at once once it is host-valid; changes
// of residency (the first host_read after a device write, any host_write) must not race.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>

#include "ember/status.h"

namespace ember {

inline constexpr size_t kBufferAlignment = 64;  // one cache line, one AVX-512 register

enum class Residency : uint8_t {
  host,    // only the host copy is current
  device,  // only the device copy is current
  both,    // both copies hold the same bytes
};

// The GPU side of a buffer, supplied by the GPU module. Core code only calls these two.
class DeviceMirror {
 public:
  virtual ~DeviceMirror() = default;
  virtual Status upload(const std::byte* host, size_t bytes) = 0;
  virtual Status download(std::byte* host, size_t bytes) = 0;
};

class Buffer {
 public:
  // Fresh, uninitialised host memory aligned to `alignment` (≥ 64, a power of two); from
  // 2 MiB on, aligned to 2 MiB and advised to take huge pages.
  static Result<std::shared_ptr<Buffer>> allocate(size_t bytes, size_t alignment = kBufferAlignment);
  // The same, solely owned (pools keep their idle buffers this way).
  static Result<std::unique_ptr<Buffer>> allocate_unique(size_t bytes, size_t alignment = kBufferAlignment);
  // Memory owned elsewhere (a memory-mapped file, say); `keep_alive` holds it while the
  // buffer lives. A read-only buffer refuses host_write().
  static std::shared_ptr<Buffer> wrap(std::byte* data, size_t bytes, std::shared_ptr<const void> keep_alive,
                                      bool writable);
  // Read-only pages of a memory-mapped file: as wrap, and once a rearranged copy (below)
  // replaces them they are handed back to the kernel, so a model's weights are not held
  // twice; anything that reads them later faults them in from the file again.
  static std::shared_ptr<Buffer> wrap_file_pages(std::byte* data, size_t bytes, std::shared_ptr<const void> keep_alive);

  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  size_t bytes() const { return bytes_; }
  size_t alignment() const { return alignment_; }
  bool writable() const { return writable_; }
  // Whether the bytes are pages of a memory-mapped file (wrap_file_pages).
  bool file_pages() const { return file_pages_; }
  Residency residency() const { return residency_; }

  // Host bytes, current: downloads first if only the device copy is current.
  Result<const std::byte*> host_read();
  // Host bytes for writing: current as host_read(), and the device copy becomes stale.
  Result<std::byte*> host_write();

  // For the GPU module: attach the device side and mark which side is current.
  void attach_device(std::unique_ptr<DeviceMirror> mirror, Residency current);
  DeviceMirror* device() const { return mirror_.get(); }
  void mark_device_written() { residency_ = Residency::device; }
  // The device just wrote the whole buffer and `written` holds the same bytes, read back
  // within that submission: the host copy takes them and both sides are current.
  void take_device_write(const std::byte* written);
  // The bytes no longer matter (a pool takes the buffer back): the next write needs no
  // copy from either side.
  void discard_contents() { residency_ = Residency::host; }
  Status ensure_device_current();

  // The bytes were pinned in RAM (mlock, --mlock): a rearranged copy is pinned too.
  void mark_locked() { locked_ = true; }

  // For backends: these read-only bytes in another arrangement for one kernel (the CPU's
  // interleaved weight rows), made by `make` from the host bytes on the first request
  // for `arrangement` and kept while the buffer lives. Safe from several threads.
  using Rearrange = std::function<Result<std::shared_ptr<Buffer>>(const std::byte* bytes)>;
  Result<std::shared_ptr<Buffer>> rearranged(uint32_t arrangement, const Rearrange& make);

 private:
  Buffer(std::byte* data, size_t bytes, size_t alignment, bool owned, bool writable,
         std::shared_ptr<const void> keep_alive);

  std::byte* data_;
  size_t bytes_;
  size_t alignment_;
  bool owned_;
  bool writable_;
  Residency residency_ = Residency::host;
  std::shared_ptr<const void> keep_alive_;
  std::unique_ptr<DeviceMirror> mirror_;
  bool file_pages_ = false;
  bool locked_ = false;
  std::mutex rearranged_mutex_;
  uint32_t arrangement_ = 0;
  std::shared_ptr<Buffer> rearranged_;
};

}  // namespace ember
