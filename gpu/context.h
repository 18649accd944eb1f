// A Vulkan instance, the chosen physical device, a logical device with one compute
// queue, and the capability record of that device. Everything else in gpu/ runs on a
// Context. One context may be used from several threads: queue submission is serialised.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "gpu/device_capabilities.h"
#include "gpu/fault_injection.h"
#include "gpu/status.h"
#include "gpu/vulkan_functions.h"

namespace ember::gpu {

struct ContextOptions {
  // Which device, by vkEnumeratePhysicalDevices index. Unset: EMBER_VK_DEVICE if set,
  // else the first usable device by type (discrete, integrated, virtual, other, CPU).
  std::optional<uint32_t> device_index = std::nullopt;
};

// A failed Vulkan call as a Status naming the call and the result.
Status vk_check(VkResult result, const char* what);

class Context {
 public:
  static Result<std::unique_ptr<Context>> create(const ContextOptions& options = {});
  // Every physical device's record, in enumeration order (what --list-devices prints).
  static Result<std::vector<DeviceCapabilities>> list_devices();

  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context();

  const VulkanFunctions& vk() const { return vk_; }
  VkDevice device() const { return device_; }
  VkPhysicalDevice physical_device() const { return physical_device_; }
  const DeviceCapabilities& capabilities() const { return capabilities_; }
  uint32_t queue_family() const { return capabilities_.compute_queue_family; }

  // Submits one recorded command buffer; `fence` (may be null) signals on completion.
  Status submit(VkCommandBuffer commands, VkFence fence);
  // vk_check() that also remembers VK_ERROR_DEVICE_LOST: for results of calls that wait
  // on or submit to the device.
  Status check_device(VkResult result, const char* what);
  // Command buffers submitted so far (each a round trip when waited on): what the tests
  // of batching count.
  uint64_t submissions() const { return submissions_.load(std::memory_order_relaxed); }
  // Once lost, a device stays lost: nothing submitted to it runs again.
  bool device_lost() const { return device_lost_.load(std::memory_order_relaxed); }
  // The tests' fault hook (gpu/fault_injection.h).
  FaultInjector& faults() { return faults_; }
  // A recording that may be submitted in pieces: commands() is the command buffer to
  // record into, and next_piece() submits what is recorded so far without waiting and
  // moves on to a fresh command buffer, so the device runs the first pieces while the host
  // records the rest. Commands of later pieces are ordered after earlier ones as within
  // one command buffer (barriers reach back across submissions on the one queue). Past
  // kMostPieces, next_piece() does nothing.
  static constexpr uint32_t kMostPieces = 6;
  class Pieces {
   public:
    VkCommandBuffer commands() const { return context_.piece_commands_[begun_ - 1]; }
    void next_piece();
    uint32_t count() const { return begun_; }

   private:
    friend class Context;
    explicit Pieces(Context& context) : context_(context) {}
    Status begin();
    Status submit(uint32_t piece);

    Context& context_;
    uint32_t begun_ = 0, submitted_ = 0;
    Status status_;
  };
  // Records commands through `record` into reusable command buffers, submits them and
  // waits for the device to finish them all.
  Status run_and_wait(const std::function<void(VkCommandBuffer)>& record);
  Status run_pieces_and_wait(const std::function<void(Pieces&)>& record);
  // run_and_wait() between two timestamps: the seconds the device spent on the recorded
  // commands, without recording, submission or the host's wake-up. What benchmarks time.
  // Unavailable where the compute queue has no timestamps.
  Result<double> run_and_time(const std::function<void(VkCommandBuffer)>& record);
  Result<double> run_pieces_and_time(const std::function<void(Pieces&)>& record);
  // The same in `steps` parts: `record` calls mark(i) after recording part i (each part
  // once, in order), and the result holds the seconds from the end of part i - 1 (the
  // start, for part 0) to the end of part i. Parts the device overlaps share their time.
  // Where the recording is in pieces, a part's time includes any wait for its piece.
  using StepMarker = std::function<void(uint32_t step)>;
  Result<std::vector<double>> run_and_time_steps(uint32_t steps,
                                                 const std::function<void(Pieces&, const StepMarker&)>& record);

 private:
  Context() = default;
  // Waits until the first `count` pieces' fences have signalled.
  Status wait_for_pieces(uint32_t count);

  VulkanFunctions vk_;
  VkInstance instance_ = VK_NULL_HANDLE;
  VkPhysicalDevice physical_device_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  DeviceCapabilities capabilities_;
  std::mutex queue_mutex_;
  std::mutex run_mutex_;
  VkCommandPool command_pool_ = VK_NULL_HANDLE;
  std::array<VkCommandBuffer, kMostPieces> piece_commands_{};
  std::array<VkFence, kMostPieces> piece_fences_{};
  std::mutex timestamp_mutex_;
  VkQueryPool timestamp_pool_ = VK_NULL_HANDLE;  // made by the first timed run, grown as needed
  uint32_t timestamp_queries_ = 0;
  std::atomic<bool> device_lost_{false};
  std::atomic<uint64_t> submissions_{0};
  FaultInjector faults_;
};

}  // namespace ember::gpu
