#include "gpu/staging_ring.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace ember::gpu {

Result<std::unique_ptr<StagingRing>> StagingRing::create(Context& context, Allocator& allocator,
                                                         StagingRingOptions options) {
  if (options.slot_bytes == 0 || options.slots == 0)
    return Status{ErrorKind::invalid_argument, "a staging ring needs at least one slot of at least one byte"};
  const VulkanFunctions& vk = context.vk();
  std::unique_ptr<StagingRing> ring(new StagingRing(context, options));
  VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pool_info.queueFamilyIndex = context.queue_family();
  EMBER_GPU_RETURN_IF_ERROR(
      vk_check(vk.vkCreateCommandPool(context.device(), &pool_info, nullptr, &ring->pool_), "vkCreateCommandPool"));
  ring->slots_.resize(options.slots);
  for (Slot& slot : ring->slots_) {
    auto buffer = DeviceBuffer::create(allocator, options.slot_bytes, MemoryUse::staging);
    if (!buffer) return buffer.status();
    if (buffer->mapped() == nullptr)
      return Status{ErrorKind::unavailable, "the staging memory type is not host-visible"};
    slot.buffer = std::move(buffer.value());
    VkCommandBufferAllocateInfo allocate{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    allocate.commandPool = ring->pool_;
    allocate.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    allocate.commandBufferCount = 1;
    EMBER_GPU_RETURN_IF_ERROR(
        vk_check(vk.vkAllocateCommandBuffers(context.device(), &allocate, &slot.commands), "vkAllocateCommandBuffers"));
    VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    EMBER_GPU_RETURN_IF_ERROR(vk_check(vk.vkCreateFence(context.device(), &fence_info, nullptr, &slot.fence), "vkCreateFence"));
  }
  return ring;
}

StagingRing::~StagingRing() {
  const VulkanFunctions& vk = context_.vk();
  for (Slot& slot : slots_) {
    if (slot.in_flight) vk.vkWaitForFences(context_.device(), 1, &slot.fence, VK_TRUE, UINT64_MAX);
    if (slot.fence != VK_NULL_HANDLE) vk.vkDestroyFence(context_.device(), slot.fence, nullptr);
  }
  if (pool_ != VK_NULL_HANDLE) vk.vkDestroyCommandPool(context_.device(), pool_, nullptr);
}

Status StagingRing::finish(Slot& slot) {
  if (!slot.in_flight) return {};
  slot.in_flight = false;
  EMBER_GPU_RETURN_IF_ERROR(
      context_.check_device(context_.vk().vkWaitForFences(context_.device(), 1, &slot.fence, VK_TRUE, UINT64_MAX),
                            "vkWaitForFences"));
  if (slot.drain_to != nullptr) {
    std::memcpy(slot.drain_to, slot.buffer.mapped(), slot.drain_bytes);
    slot.drain_to = nullptr;
  }
  return {};
}

Status StagingRing::submit_copy(Slot& slot, VkBuffer from, uint64_t from_offset, VkBuffer to, uint64_t to_offset,
                                uint64_t bytes) {
  const VulkanFunctions& vk = context_.vk();
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  EMBER_GPU_RETURN_IF_ERROR(vk_check(vk.vkBeginCommandBuffer(slot.commands, &begin), "vkBeginCommandBuffer"));
  // Earlier shaders and copies touching the device buffer finish first; the copy's
  // writes are then visible to later shaders, copies and host reads.
  VkMemoryBarrier before{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  before.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT |
                         VK_ACCESS_HOST_WRITE_BIT;
  before.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  vk.vkCmdPipelineBarrier(slot.commands,
                          VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                          VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &before, 0, nullptr, 0, nullptr);
  const VkBufferCopy region{from_offset, to_offset, bytes};
  vk.vkCmdCopyBuffer(slot.commands, from, to, 1, &region);
  VkMemoryBarrier after{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  after.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  after.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                        VK_ACCESS_HOST_READ_BIT;
  vk.vkCmdPipelineBarrier(slot.commands, VK_PIPELINE_STAGE_TRANSFER_BIT,
                          VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                          0, 1, &after, 0, nullptr, 0, nullptr);
  EMBER_GPU_RETURN_IF_ERROR(vk_check(vk.vkEndCommandBuffer(slot.commands), "vkEndCommandBuffer"));
  EMBER_GPU_RETURN_IF_ERROR(vk_check(vk.vkResetFences(context_.device(), 1, &slot.fence), "vkResetFences"));
  EMBER_GPU_RETURN_IF_ERROR(context_.submit(slot.commands, slot.fence));
  slot.in_flight = true;
  return {};
}

Status StagingRing::upload(const std::byte* host, const DeviceBuffer& target, uint64_t offset, uint64_t bytes) {
  if (offset + bytes > target.bytes())
    return {ErrorKind::invalid_argument, "staging upload of " + std::to_string(bytes) + " bytes at " +
                                             std::to_string(offset) + " overruns a " + std::to_string(target.bytes()) +
                                             "-byte buffer"};
  std::lock_guard lock(mutex_);
  Status status;
  for (uint64_t done = 0; done < bytes && status.ok();) {
    Slot& slot = slots_[next_slot_];
    next_slot_ = (next_slot_ + 1) % slots_.size();
    status = finish(slot);
    if (!status.ok()) break;
    const uint64_t chunk = std::min(options_.slot_bytes, bytes - done);
    std::memcpy(slot.buffer.mapped(), host + done, chunk);
    status = submit_copy(slot, slot.buffer.handle(), 0, target.handle(), offset + done, chunk);
    ++chunks_uploaded_;
    done += chunk;
  }
  for (Slot& slot : slots_) {
    const Status finished = finish(slot);
    if (status.ok()) status = finished;
  }
  return status;
}

Status StagingRing::download(const DeviceBuffer& source, uint64_t offset, std::byte* host, uint64_t bytes) {
  if (offset + bytes > source.bytes())
    return {ErrorKind::invalid_argument, "staging download of " + std::to_string(bytes) + " bytes at " +
                                             std::to_string(offset) + " overruns a " + std::to_string(source.bytes()) +
                                             "-byte buffer"};
  std::lock_guard lock(mutex_);
  Status status;
  for (uint64_t done = 0; done < bytes && status.ok();) {
    Slot& slot = slots_[next_slot_];
    next_slot_ = (next_slot_ + 1) % slots_.size();
    status = finish(slot);
    if (!status.ok()) break;
    const uint64_t chunk = std::min(options_.slot_bytes, bytes - done);
    status = submit_copy(slot, source.handle(), offset + done, slot.buffer.handle(), 0, chunk);
    if (status.ok()) {
      slot.drain_to = host + done;
      slot.drain_bytes = chunk;
    }
    ++chunks_downloaded_;
    done += chunk;
  }
  // Slots drain in submission order: the oldest chunk is next_slot_'s.
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Status finished = finish(slots_[(next_slot_ + i) % slots_.size()]);
    if (status.ok()) status = finished;
  }
  return status;
}

}  // namespace ember::gpu
