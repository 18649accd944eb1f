// A VkBuffer bound to memory from the Allocator, released when it goes away. Sizes are
// rounded up to whole 32-bit words: shaders read every buffer as uint[] (so f16 and the
// 34- and 18-byte GGUF blocks need no 8/16-bit storage feature), and the last word must
// lie inside the buffer.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gpu/allocator.h"

namespace ember::gpu {

class DeviceBuffer {
 public:
  // `min_alignment` (a power of two) raises the device's own alignment, e.g. to a cache
  // line where the host will use the mapping as ordinary memory.
  static Result<DeviceBuffer> create(Allocator& allocator, uint64_t bytes, MemoryUse use, uint64_t min_alignment = 4);

  DeviceBuffer() = default;
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  VkBuffer handle() const { return buffer_; }
  // Unique to this buffer in the process, unlike its handle, which a later buffer may
  // reuse: what a cache of descriptor sets over it is keyed by (0 for no buffer).
  uint64_t serial() const { return serial_; }
  uint64_t bytes() const { return bytes_; }  // as requested, before rounding
  const Allocation& allocation() const { return allocation_; }
  // The host address of the buffer's first byte, or null where its memory is not host-visible.
  std::byte* mapped() const { return allocation_.mapped; }

 private:
  void reset();

  Allocator* allocator_ = nullptr;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  uint64_t serial_ = 0;
  uint64_t bytes_ = 0;
  Allocation allocation_;
};

}  // namespace ember::gpu
