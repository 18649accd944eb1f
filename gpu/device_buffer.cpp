#include "gpu/device_buffer.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <utility>

namespace ember::gpu {

Result<DeviceBuffer> DeviceBuffer::create(Allocator& allocator, uint64_t bytes, MemoryUse use, uint64_t min_alignment) {
  const Context& context = allocator.context();
  const VulkanFunctions& vk = context.vk();
  const uint64_t rounded = (std::max<uint64_t>(bytes, 1) + 3) & ~uint64_t{3};
  if (rounded > context.capabilities().max_storage_buffer_range)
    return Status{ErrorKind::invalid_argument, "a GPU buffer of " + std::to_string(bytes) +
                                                   " bytes exceeds the device's storage buffer range of " +
                                                   std::to_string(context.capabilities().max_storage_buffer_range)};
  static std::atomic<uint64_t> next_serial{1};
  DeviceBuffer buffer;
  buffer.serial_ = next_serial.fetch_add(1, std::memory_order_relaxed);
  buffer.allocator_ = &allocator;
  buffer.bytes_ = bytes;
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = rounded;
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  EMBER_GPU_RETURN_IF_ERROR(vk_check(vk.vkCreateBuffer(context.device(), &info, nullptr, &buffer.buffer_), "vkCreateBuffer"));
  VkMemoryRequirements requirements{};
  vk.vkGetBufferMemoryRequirements(context.device(), buffer.buffer_, &requirements);
  requirements.alignment = std::max(requirements.alignment, min_alignment);
  auto allocation = allocator.allocate(requirements, use);
  if (!allocation) return allocation.status();
  buffer.allocation_ = allocation.value();
  EMBER_GPU_RETURN_IF_ERROR(vk_check(vk.vkBindBufferMemory(context.device(), buffer.buffer_, buffer.allocation_.memory,
                                                           buffer.allocation_.offset),
                                     "vkBindBufferMemory"));
  return buffer;
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : allocator_(std::exchange(other.allocator_, nullptr)),
      buffer_(std::exchange(other.buffer_, VK_NULL_HANDLE)),
      serial_(std::exchange(other.serial_, 0)),
      bytes_(std::exchange(other.bytes_, 0)),
      allocation_(std::exchange(other.allocation_, Allocation{})) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    allocator_ = std::exchange(other.allocator_, nullptr);
    buffer_ = std::exchange(other.buffer_, VK_NULL_HANDLE);
    serial_ = std::exchange(other.serial_, 0);
    bytes_ = std::exchange(other.bytes_, 0);
    allocation_ = std::exchange(other.allocation_, Allocation{});
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() { reset(); }

void DeviceBuffer::reset() {
  if (allocator_ == nullptr) return;
  if (buffer_ != VK_NULL_HANDLE)
    allocator_->context().vk().vkDestroyBuffer(allocator_->context().device(), buffer_, nullptr);
  allocator_->release(allocation_);
  allocator_ = nullptr;
  buffer_ = VK_NULL_HANDLE;
  serial_ = 0;
  allocation_ = {};
}

}  // namespace ember::gpu
