#include "core/vulkan_device.h"

#include <fmt/format.h>

namespace ember {

Status from_gpu(const gpu::Status& status) {
  switch (status.kind()) {
    case gpu::ErrorKind::ok: return {};
    case gpu::ErrorKind::unavailable: return unsupported(status.message());
    case gpu::ErrorKind::invalid_argument: return invalid_argument(status.message());
    case gpu::ErrorKind::out_of_memory: return out_of_memory(status.message());
    case gpu::ErrorKind::device_error: return internal_error(status.message());
  }
  return internal_error(status.message());
}

Result<std::shared_ptr<VulkanDevice>> VulkanDevice::open(const VulkanOptions& options) {
  auto context = gpu::Context::create({.device_index = options.device_index});
  if (!context) return from_gpu(context.status());
  std::shared_ptr<VulkanDevice> device(new VulkanDevice());
  device->context_ = std::move(context.value());
  device->allocator_ = std::make_unique<gpu::Allocator>(*device->context_, gpu::AllocatorOptions{.budget_bytes = options.budget_bytes});
  auto staging = gpu::StagingRing::create(*device->context_, *device->allocator_, options.staging);
  if (!staging) return from_gpu(staging.status());
  device->staging_ = std::move(staging.value());
  device->pipelines_ = std::make_unique<gpu::PipelineCache>(*device->context_);
  auto linear = gpu::FusedLinear::create(*device->context_, *device->pipelines_, *device->allocator_);
  if (!linear) return from_gpu(linear.status());
  device->linear_ = std::move(linear.value());
  auto sets = gpu::DescriptorSets::create(*device->context_, kDescriptorSets);
  if (!sets) return from_gpu(sets.status());
  device->descriptor_sets_ = std::move(sets.value());
  device->row_ops_ = std::make_unique<gpu::RowOps>(*device->pipelines_);
  device->attention_ = std::make_unique<gpu::DeviceAttention>(*device->pipelines_);
  device->zero_copy_ =
      options.zero_copy && device->allocator_->memory_type_for(gpu::MemoryUse::device_mapped).has_value();
  return device;
}

VulkanDevice::~VulkanDevice() = default;

Result<std::shared_ptr<Buffer>> VulkanDevice::allocate(size_t bytes) {
  if (zero_copy_) {
    auto memory = gpu::DeviceBuffer::create(*allocator_, bytes, gpu::MemoryUse::device_mapped, kBufferAlignment);
    if (!memory) return from_gpu(memory.status());
    std::byte* mapped = memory->mapped();
    // The mirror owns the device memory; the keep-alive holds the device (and so the
    // allocator) until the buffer, and its mirror, are gone.
    auto buffer = Buffer::wrap(mapped, bytes, shared_from_this(), /*writable=*/true);
    buffer->attach_device(std::make_unique<VulkanMirror>(shared_from_this(), std::move(memory.value())), Residency::both);
    return buffer;
  }
  auto buffer = Buffer::allocate(bytes);
  if (!buffer) return buffer.status();
  EMBER_RETURN_IF_ERROR(attach(*buffer.value()));
  return buffer;
}

Status VulkanDevice::attach(Buffer& buffer, std::optional<gpu::WeightType> split_blocks) {
  if (split_blocks && (!gpu::is_block(*split_blocks) || buffer.bytes() % gpu::block_bytes(*split_blocks) != 0))
    return invalid_argument(fmt::format("a {}-byte buffer is not whole blocks to keep split", buffer.bytes()));
  auto memory = gpu::DeviceBuffer::create(*allocator_, buffer.bytes(), gpu::MemoryUse::device);
  if (!memory) return from_gpu(memory.status());
  buffer.attach_device(std::make_unique<VulkanMirror>(shared_from_this(), std::move(memory.value()), split_blocks),
                       Residency::host);
  return {};
}

Status VulkanMirror::upload(const std::byte* host, size_t bytes) {
  if (host == buffer_.mapped()) return {};
  if (bytes > buffer_.bytes())
    return invalid_argument(fmt::format("upload of {} bytes into a {}-byte device buffer", bytes, buffer_.bytes()));
  if (!split_blocks_) return from_gpu(device_->staging().upload(host, buffer_, 0, bytes));
  // The rearranged bytes pass through host memory of their own for the transfer's length.
  auto split = Buffer::allocate(bytes);
  if (!split) return split.status();
  std::byte* rearranged = split.value()->host_write().value();
  gpu::split_blocks(*split_blocks_, host, bytes / gpu::block_bytes(*split_blocks_), rearranged);
  return from_gpu(device_->staging().upload(rearranged, buffer_, 0, bytes));
}

Status VulkanMirror::download(std::byte* host, size_t bytes) {
  if (host == buffer_.mapped()) return {};
  if (bytes > buffer_.bytes())
    return invalid_argument(fmt::format("download of {} bytes from a {}-byte device buffer", bytes, buffer_.bytes()));
  if (!split_blocks_) return from_gpu(device_->staging().download(buffer_, 0, host, bytes));
  auto split = Buffer::allocate(bytes);
  if (!split) return split.status();
  std::byte* rearranged = split.value()->host_write().value();
  EMBER_RETURN_IF_ERROR(from_gpu(device_->staging().download(buffer_, 0, rearranged, bytes)));
  gpu::join_blocks(*split_blocks_, rearranged, bytes / gpu::block_bytes(*split_blocks_), host);
  return {};
}

}  // namespace ember
