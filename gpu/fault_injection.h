// A test hook for the faults a Vulkan device can raise at run time: armed, the next calls
// of one kind (memory allocation, queue submission, pipeline creation) report the result
// a real fault gives instead of calling Vulkan, so tests can show that each fault is
// survived. Compiled in always, so tests run the code that ships; unarmed it costs one
// relaxed atomic load per call. Only tests arm it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "gpu/vulkan_functions.h"

namespace ember::gpu {

enum class InjectedFault : uint8_t {
  out_of_device_memory,  // Allocator::allocate: VK_ERROR_OUT_OF_DEVICE_MEMORY
  device_lost,           // Context::submit: VK_ERROR_DEVICE_LOST
  pipeline_creation,     // PipelineCache::get: VK_ERROR_INITIALIZATION_FAILED from vkCreateComputePipelines
};

class FaultInjector {
 public:
  // The next `calls` calls of that kind fail; 0 disarms it.
  void arm(InjectedFault fault, int calls) { remaining_[index(fault)].store(calls, std::memory_order_relaxed); }

  // The result the next call of that kind must report: the fault while armed (one call
  // used up), VK_SUCCESS otherwise, meaning "call Vulkan".
  VkResult take(InjectedFault fault) {
    std::atomic<int>& remaining = remaining_[index(fault)];
    int left = remaining.load(std::memory_order_relaxed);
    while (left > 0)
      if (remaining.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) return result_of(fault);
    return VK_SUCCESS;
  }

 private:
  static size_t index(InjectedFault fault) { return static_cast<size_t>(fault); }
  static VkResult result_of(InjectedFault fault) {
    switch (fault) {
      case InjectedFault::out_of_device_memory: return VK_ERROR_OUT_OF_DEVICE_MEMORY;
      case InjectedFault::device_lost: return VK_ERROR_DEVICE_LOST;
      case InjectedFault::pipeline_creation: return VK_ERROR_INITIALIZATION_FAILED;
    }
    return VK_ERROR_UNKNOWN;
  }

  std::array<std::atomic<int>, 3> remaining_{};
};

}  // namespace ember::gpu
