// Device memory for the whole module: large VkDeviceMemory blocks per memory type, each
// carved up by a FreeList, so that thousands of tensors cost a handful of Vulkan
// allocations (drivers cap their number, and each is slow). Host-visible blocks are
// mapped once, for their whole life. A budget bounds the bytes held in blocks: the
// caller's, the heap's VK_EXT_memory_budget figure where the device reports one, and the
// heap size otherwise. Running past it is an error value, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "gpu/context.h"
#include "gpu/free_list.h"
#include "gpu/status.h"

namespace ember::gpu {

enum class MemoryUse {
  device,         // device-local; types the host cannot see preferred
  device_mapped,  // device-local and host-visible+coherent: one allocation serves both sides
  staging,        // host-visible+coherent, for copies; cached and not device-local preferred
};

struct AllocatorOptions {
  uint64_t block_bytes = uint64_t{64} << 20;  // larger requests get a block of their own
  uint64_t budget_bytes = 0;                  // cap on all blocks together; 0: the device's limits only
};

struct Allocation {
  VkDeviceMemory memory = VK_NULL_HANDLE;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint32_t memory_type = 0;
  std::byte* mapped = nullptr;  // the host address of `offset`, where the type is host-visible
  uint64_t block_id = 0;

  bool valid() const { return memory != VK_NULL_HANDLE; }
};

struct AllocatorStats {
  size_t blocks = 0;
  size_t allocations = 0;
  uint64_t reserved_bytes = 0;  // held in blocks
  uint64_t used_bytes = 0;      // given out, alignment padding excluded
  uint64_t largest_free_range = 0;
  // 1 - largest free range / free bytes: 0 when the free space is one range (or none),
  // near 1 when it is scattered into pieces too small for a large request.
  double fragmentation = 0.0;
};

class Allocator {
 public:
  Allocator(Context& context, AllocatorOptions options = {});
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;
  ~Allocator();

  // Memory meeting `requirements` (size, alignment, allowed memory types) for `use`.
  Result<Allocation> allocate(const VkMemoryRequirements& requirements, MemoryUse use);
  // Gives an allocation back; a block left empty is freed unless it is the last spare
  // block of its memory type (kept so that alternating allocate/release does not churn).
  void release(const Allocation& allocation);

  // Frees every block that holds no allocation (the spare blocks release() keeps), so a
  // request that ran out of device memory can be retried; returns the bytes freed.
  uint64_t trim();

  // The memory type allocate() would pick, or none if the device has no fitting type.
  std::optional<uint32_t> memory_type_for(MemoryUse use, uint32_t allowed_types = UINT32_MAX) const;
  AllocatorStats stats() const;
  Context& context() const { return context_; }

 private:
  struct Block {
    uint64_t id;
    VkDeviceMemory memory;
    uint32_t memory_type;
    std::byte* mapped;
    bool dedicated;
    FreeList ranges;
    size_t allocations = 0;
  };

  Result<Block*> new_block(uint32_t memory_type, uint64_t minimum_bytes);
  Status check_budget(uint32_t memory_type, uint64_t bytes) const;

  Context& context_;
  AllocatorOptions options_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Block>> blocks_;
  uint64_t next_block_id_ = 1;
  uint64_t reserved_bytes_ = 0;
};

}  // namespace ember::gpu
