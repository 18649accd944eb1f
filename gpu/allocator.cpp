#include "gpu/allocator.h"

#include <algorithm>
#include <cstdio>
#include <string>

namespace ember::gpu {

namespace {

std::string mib(uint64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

std::string type_mask_text(uint32_t mask) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%x", mask);
  return text;
}

const char* use_name(MemoryUse use) {
  switch (use) {
    case MemoryUse::device: return "device";
    case MemoryUse::device_mapped: return "device-mapped";
    case MemoryUse::staging: return "staging";
  }
  return "?";
}

}  // namespace

Allocator::Allocator(Context& context, AllocatorOptions options) : context_(context), options_(options) {}

Allocator::~Allocator() {
  for (const auto& block : blocks_) context_.vk().vkFreeMemory(context_.device(), block->memory, nullptr);
}

std::optional<uint32_t> Allocator::memory_type_for(MemoryUse use, uint32_t allowed_types) const {
  const auto& types = context_.capabilities().memory_types;
  std::optional<uint32_t> best;
  int best_score = -1;
  for (uint32_t t = 0; t < types.size(); ++t) {
    if ((allowed_types & (1u << t)) == 0) continue;
    const MemoryTypeInfo& type = types[t];
    int score = 0;
    switch (use) {
      case MemoryUse::device:
        if (!type.device_local) continue;
        score = type.host_visible ? 0 : 1;
        break;
      case MemoryUse::device_mapped:
        if (!type.device_local || !type.host_visible || !type.host_coherent) continue;
        break;
      case MemoryUse::staging:
        if (!type.host_visible || !type.host_coherent) continue;
        score = (type.device_local ? 0 : 2) + (type.host_cached ? 1 : 0);
        break;
    }
    if (score > best_score) {
      best = t;
      best_score = score;
    }
  }
  return best;
}

Status Allocator::check_budget(uint32_t memory_type, uint64_t bytes) const {
  if (options_.budget_bytes != 0 && reserved_bytes_ + bytes > options_.budget_bytes)
    return {ErrorKind::out_of_memory, "GPU memory budget of " + mib(options_.budget_bytes) + " exhausted: " +
                                          mib(reserved_bytes_) + " held, " + mib(bytes) + " more requested"};
  const DeviceCapabilities& caps = context_.capabilities();
  const uint32_t heap = caps.memory_types[memory_type].heap;
  uint64_t heap_used = 0;
  for (const auto& block : blocks_)
    if (caps.memory_types[block->memory_type].heap == heap) heap_used += block->ranges.capacity();
  uint64_t heap_limit = caps.heaps[heap].bytes;
  if (caps.memory_budget) {
    // The budget moves with other processes' use, so it is read afresh for each block.
    VkPhysicalDeviceMemoryBudgetPropertiesEXT budget{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 memory{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2, &budget};
    context_.vk().vkGetPhysicalDeviceMemoryProperties2(context_.physical_device(), &memory);
    heap_used = budget.heapUsage[heap];
    heap_limit = budget.heapBudget[heap];
  }
  if (heap_used + bytes > heap_limit)
    return {ErrorKind::out_of_memory, "GPU memory heap " + std::to_string(heap) + " is full: " + mib(heap_used) +
                                          " of " + mib(heap_limit) + " in use, " + mib(bytes) + " more requested"};
  return {};
}

Result<Allocator::Block*> Allocator::new_block(uint32_t memory_type, uint64_t minimum_bytes) {
  const bool dedicated = minimum_bytes > options_.block_bytes;
  uint64_t bytes = std::max(minimum_bytes, options_.block_bytes);
  // Near the budget a smaller block that still holds the request beats refusing it.
  if (!dedicated && options_.budget_bytes != 0 && reserved_bytes_ + bytes > options_.budget_bytes &&
      reserved_bytes_ + minimum_bytes <= options_.budget_bytes)
    bytes = options_.budget_bytes - reserved_bytes_;
  EMBER_GPU_RETURN_IF_ERROR(check_budget(memory_type, bytes));

  const VulkanFunctions& vk = context_.vk();
  VkMemoryAllocateInfo info{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  info.allocationSize = bytes;
  info.memoryTypeIndex = memory_type;
  VkDeviceMemory memory = VK_NULL_HANDLE;
  EMBER_GPU_RETURN_IF_ERROR(vk_check(vk.vkAllocateMemory(context_.device(), &info, nullptr, &memory),
                                     ("vkAllocateMemory of " + mib(bytes)).c_str()));
  std::byte* mapped = nullptr;
  if (context_.capabilities().memory_types[memory_type].host_visible) {
    void* address = nullptr;
    const VkResult result = vk.vkMapMemory(context_.device(), memory, 0, VK_WHOLE_SIZE, 0, &address);
    if (result != VK_SUCCESS) {
      vk.vkFreeMemory(context_.device(), memory, nullptr);
      return vk_check(result, "vkMapMemory");
    }
    mapped = static_cast<std::byte*>(address);
  }
  blocks_.push_back(std::make_unique<Block>(Block{next_block_id_++, memory, memory_type, mapped, dedicated, FreeList(bytes)}));
  reserved_bytes_ += bytes;
  return blocks_.back().get();
}

Result<Allocation> Allocator::allocate(const VkMemoryRequirements& requirements, MemoryUse use) {
  const auto memory_type = memory_type_for(use, requirements.memoryTypeBits);
  if (!memory_type)
    return Status{ErrorKind::unavailable, std::string("the Vulkan device has no memory type for ") + use_name(use) +
                                              " memory among types " + type_mask_text(requirements.memoryTypeBits)};
  if (const VkResult injected = context_.faults().take(InjectedFault::out_of_device_memory); injected != VK_SUCCESS)
    return vk_check(injected, "vkAllocateMemory");
  const uint64_t alignment = std::max<uint64_t>(requirements.alignment, 1);
  if ((alignment & (alignment - 1)) != 0)
    return Status{ErrorKind::invalid_argument, "alignment " + std::to_string(alignment) + " is not a power of two"};
  std::lock_guard lock(mutex_);
  Block* home = nullptr;
  std::optional<uint64_t> offset;
  for (const auto& block : blocks_) {
    if (block->memory_type != *memory_type || block->dedicated) continue;
    offset = block->ranges.allocate(requirements.size, alignment);
    if (offset) {
      home = block.get();
      break;
    }
  }
  if (home == nullptr) {
    auto block = new_block(*memory_type, requirements.size);
    if (!block) return block.status();
    home = block.value();
    offset = home->ranges.allocate(requirements.size, alignment);
  }
  ++home->allocations;
  return Allocation{home->memory, *offset, requirements.size, home->memory_type,
                    home->mapped ? home->mapped + *offset : nullptr, home->id};
}

void Allocator::release(const Allocation& allocation) {
  if (!allocation.valid()) return;
  std::lock_guard lock(mutex_);
  const auto owner = std::find_if(blocks_.begin(), blocks_.end(),
                                  [&](const auto& block) { return block->id == allocation.block_id; });
  if (owner == blocks_.end()) return;
  Block& block = **owner;
  block.ranges.release(allocation.offset, allocation.size);
  --block.allocations;
  if (block.allocations > 0) return;
  const bool another_spare = std::any_of(blocks_.begin(), blocks_.end(), [&](const auto& other) {
    return other.get() != &block && other->memory_type == block.memory_type && !other->dedicated &&
           other->allocations == 0;
  });
  if (block.dedicated || another_spare) {
    context_.vk().vkFreeMemory(context_.device(), block.memory, nullptr);
    reserved_bytes_ -= block.ranges.capacity();
    blocks_.erase(owner);
  }
}

uint64_t Allocator::trim() {
  std::lock_guard lock(mutex_);
  uint64_t freed = 0;
  std::erase_if(blocks_, [&](const std::unique_ptr<Block>& block) {
    if (block->allocations > 0) return false;
    context_.vk().vkFreeMemory(context_.device(), block->memory, nullptr);
    freed += block->ranges.capacity();
    return true;
  });
  reserved_bytes_ -= freed;
  return freed;
}

AllocatorStats Allocator::stats() const {
  std::lock_guard lock(mutex_);
  AllocatorStats stats;
  uint64_t free_bytes = 0;
  for (const auto& block : blocks_) {
    ++stats.blocks;
    stats.allocations += block->allocations;
    stats.reserved_bytes += block->ranges.capacity();
    stats.used_bytes += block->ranges.used_bytes();
    free_bytes += block->ranges.free_bytes();
    stats.largest_free_range = std::max(stats.largest_free_range, block->ranges.largest_free_range());
  }
  if (free_bytes > 0) stats.fragmentation = 1.0 - static_cast<double>(stats.largest_free_range) / static_cast<double>(free_bytes);
  return stats;
}

}  // namespace ember::gpu
