// The free byte ranges of one memory block: best-fit allocation with alignment, and
// release that merges a range with free neighbours so a block that empties is one range
// again. Knows nothing of Vulkan; the allocator keeps one per VkDeviceMemory block.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

namespace ember::gpu {

class FreeList {
 public:
  explicit FreeList(uint64_t capacity);

  // The offset of `size` bytes aligned to `alignment` (a power of two), or none if no
  // free range can hold them. Padding before the aligned start stays free.
  std::optional<uint64_t> allocate(uint64_t size, uint64_t alignment);
  // Returns a range given out by allocate(); merges it with adjacent free ranges.
  void release(uint64_t offset, uint64_t size);

  uint64_t capacity() const { return capacity_; }
  uint64_t free_bytes() const { return free_bytes_; }
  uint64_t used_bytes() const { return capacity_ - free_bytes_; }
  uint64_t largest_free_range() const;
  size_t free_range_count() const { return ranges_.size(); }
  bool empty() const { return free_bytes_ == capacity_; }

 private:
  uint64_t capacity_;
  uint64_t free_bytes_;
  std::map<uint64_t, uint64_t> ranges_;  // offset -> size, disjoint and never adjacent
};

}  // namespace ember::gpu
