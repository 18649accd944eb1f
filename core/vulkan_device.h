// The core side of the Vulkan module: one opened device with its allocator, staging ring,
// pipelines and kernels, and the DeviceMirror that gives a Buffer its device home.
//
// Who owns what: VulkanDevice owns every piece of device memory through its Allocator;
// a buffer's VulkanMirror holds its DeviceBuffer and a reference to the VulkanDevice, so
// the device outlives the last buffer that lives on it. Zero copy: where the device has
// device-local host-visible memory (integrated GPUs, CPU implementations, resizable BAR)
// and the options allow it, allocate() gives a Buffer whose host bytes *are* the mapped
// device memory, so upload and download copy nothing. Otherwise a buffer has host memory
// and device memory, and copies go through the staging ring.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "ember/buffer.h"
#include "ember/status.h"
#include "gpu/allocator.h"
#include "gpu/attention.h"
#include "gpu/context.h"
#include "gpu/device_buffer.h"
#include "gpu/linear.h"
#include "gpu/pipeline_cache.h"
#include "gpu/row_ops.h"
#include "gpu/staging_ring.h"

namespace ember {

struct VulkanOptions {
  std::optional<uint32_t> device_index = std::nullopt;  // unset: EMBER_VK_DEVICE, else the best device
  // Off: never hand out host-visible device memory as a buffer's host side, so every
  // buffer takes the staging path (how the staging path is tested on a CPU device).
  bool zero_copy = true;
  uint64_t budget_bytes = 0;  // 0: the device's own limits
  gpu::StagingRingOptions staging = {};
};

// A gpu::Status as an ember::Status with the same message.
Status from_gpu(const gpu::Status& status);

class VulkanDevice : public std::enable_shared_from_this<VulkanDevice> {
 public:
  static Result<std::shared_ptr<VulkanDevice>> open(const VulkanOptions& options = {});
  ~VulkanDevice();

  // A new buffer of `bytes` with a device home. Zero copy: host and device share the
  // bytes and both are current. Otherwise the host side is current and the device side
  // holds nothing yet.
  Result<std::shared_ptr<Buffer>> allocate(size_t bytes);
  // Gives an existing buffer (a mapped weight, say) a device home; its host bytes stay
  // the current copy until ensure_device_current() uploads them. With `split_blocks`,
  // the buffer is whole q8_0 or q4_0 blocks of that type, and the device keeps them split
  // (gpu/block_layout.h): transfers rearrange them, so the host sees the file's layout.
  Status attach(Buffer& buffer, std::optional<gpu::WeightType> split_blocks = std::nullopt);
  bool zero_copy() const { return zero_copy_; }

  gpu::Context& context() { return *context_; }
  gpu::Allocator& allocator() { return *allocator_; }
  gpu::StagingRing& staging() { return *staging_; }
  gpu::FusedLinear& linear() { return *linear_; }
  gpu::RowOps& row_ops() { return *row_ops_; }
  gpu::DeviceAttention& attention() { return *attention_; }
  // For the command batches of the backend: a few sets per node of a batch until it has run.
  gpu::DescriptorSets& descriptor_sets() { return *descriptor_sets_; }
  // Two full batches (VulkanBackend::kMaxBatch) at once, from two models on one device.
  static constexpr uint32_t kDescriptorSets = 2048;

 private:
  VulkanDevice() = default;

  // Declared in dependency order, so destroyed users first.
  std::unique_ptr<gpu::Context> context_;
  std::unique_ptr<gpu::Allocator> allocator_;
  std::unique_ptr<gpu::StagingRing> staging_;
  std::unique_ptr<gpu::PipelineCache> pipelines_;
  std::unique_ptr<gpu::FusedLinear> linear_;
  std::unique_ptr<gpu::DescriptorSets> descriptor_sets_;
  std::unique_ptr<gpu::RowOps> row_ops_;
  std::unique_ptr<gpu::DeviceAttention> attention_;
  bool zero_copy_ = false;
};

// The device side of one Buffer.
class VulkanMirror : public DeviceMirror {
 public:
  VulkanMirror(std::shared_ptr<VulkanDevice> device, gpu::DeviceBuffer buffer,
               std::optional<gpu::WeightType> split_blocks = std::nullopt)
      : device_(std::move(device)), buffer_(std::move(buffer)), split_blocks_(split_blocks) {}

  // Zero copy: `host` is the mapping itself and there is nothing to move.
  Status upload(const std::byte* host, size_t bytes) override;
  Status download(std::byte* host, size_t bytes) override;

  const VulkanDevice* owner() const { return device_.get(); }
  const gpu::DeviceBuffer& device_buffer() const { return buffer_; }
  gpu::DeviceBuffer& device_buffer() { return buffer_; }
  gpu::BlockLayout block_layout() const { return split_blocks_ ? gpu::BlockLayout::split : gpu::BlockLayout::file; }

 private:
  std::shared_ptr<VulkanDevice> device_;
  gpu::DeviceBuffer buffer_;
  std::optional<gpu::WeightType> split_blocks_;  // the device holds these blocks split
};

}  // namespace ember
