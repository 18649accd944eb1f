// Copies between host memory and device buffers the host cannot map (or is told not to),
// through a few fixed host-visible slots reused for every copy: no staging buffer is
// created per transfer. A copy larger than a slot goes in slot-sized chunks; while the
// device copies one chunk, the host fills (upload) or drains (download) another.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "gpu/device_buffer.h"

namespace ember::gpu {

struct StagingRingOptions {
  uint64_t slot_bytes = uint64_t{8} << 20;
  uint32_t slots = 2;
};

class StagingRing {
 public:
  static Result<std::unique_ptr<StagingRing>> create(Context& context, Allocator& allocator,
                                                     StagingRingOptions options = {});
  StagingRing(const StagingRing&) = delete;
  StagingRing& operator=(const StagingRing&) = delete;
  ~StagingRing();

  // `bytes` from host into target[offset ..]; done when it returns.
  Status upload(const std::byte* host, const DeviceBuffer& target, uint64_t offset, uint64_t bytes);
  // `bytes` from source[offset ..] into host; done when it returns.
  Status download(const DeviceBuffer& source, uint64_t offset, std::byte* host, uint64_t bytes);

  // Chunks copied so far, each way (tests use these to tell the staging path ran).
  uint64_t chunks_uploaded() const { return chunks_uploaded_; }
  uint64_t chunks_downloaded() const { return chunks_downloaded_; }

 private:
  struct Slot {
    DeviceBuffer buffer;
    VkCommandBuffer commands = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    bool in_flight = false;
    std::byte* drain_to = nullptr;  // a download chunk's host destination, copied out on completion
    uint64_t drain_bytes = 0;
  };

  StagingRing(Context& context, StagingRingOptions options) : context_(context), options_(options) {}
  // Waits for the slot's copy, and for a download copies the chunk out to the host.
  Status finish(Slot& slot);
  Status submit_copy(Slot& slot, VkBuffer from, uint64_t from_offset, VkBuffer to, uint64_t to_offset, uint64_t bytes);

  Context& context_;
  StagingRingOptions options_;
  std::mutex mutex_;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  std::vector<Slot> slots_;
  size_t next_slot_ = 0;
  uint64_t chunks_uploaded_ = 0;
  uint64_t chunks_downloaded_ = 0;
};

}  // namespace ember::gpu
