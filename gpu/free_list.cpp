#include "gpu/free_list.h"

#include <algorithm>
#include <iterator>

namespace ember::gpu {

FreeList::FreeList(uint64_t capacity) : capacity_(capacity), free_bytes_(capacity) {
  if (capacity > 0) ranges_.emplace(0, capacity);
}

std::optional<uint64_t> FreeList::allocate(uint64_t size, uint64_t alignment) {
  if (size == 0) size = 1;
  // Best fit: the smallest range that holds the aligned request leaves big ranges whole
  // for big requests, which keeps fragmentation down.
  auto best = ranges_.end();
  uint64_t best_waste = UINT64_MAX;
  for (auto it = ranges_.begin(); it != ranges_.end(); ++it) {
    const uint64_t start = (it->first + alignment - 1) & ~(alignment - 1);
    const uint64_t padding = start - it->first;
    if (padding > it->second || it->second - padding < size) continue;
    const uint64_t waste = it->second - size;
    if (waste < best_waste) {
      best = it;
      best_waste = waste;
    }
  }
  if (best == ranges_.end()) return std::nullopt;
  const uint64_t range_start = best->first;
  const uint64_t range_size = best->second;
  const uint64_t start = (range_start + alignment - 1) & ~(alignment - 1);
  const uint64_t end = start + size;
  ranges_.erase(best);
  if (start > range_start) ranges_.emplace(range_start, start - range_start);
  if (end < range_start + range_size) ranges_.emplace(end, range_start + range_size - end);
  free_bytes_ -= size;
  return start;
}

void FreeList::release(uint64_t offset, uint64_t size) {
  if (size == 0) size = 1;
  free_bytes_ += size;
  auto next = ranges_.lower_bound(offset);
  if (next != ranges_.begin()) {
    auto previous = std::prev(next);
    if (previous->first + previous->second == offset) {
      offset = previous->first;
      size += previous->second;
      ranges_.erase(previous);
    }
  }
  if (next != ranges_.end() && offset + size == next->first) {
    size += next->second;
    ranges_.erase(next);
  }
  ranges_.emplace(offset, size);
}

uint64_t FreeList::largest_free_range() const {
  uint64_t largest = 0;
  for (const auto& [offset, size] : ranges_) largest = std::max(largest, size);
  return largest;
}

}  // namespace ember::gpu
