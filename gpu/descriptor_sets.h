// Descriptor sets for the module's compute pipelines, from one pool: every binding a
// storage buffer, bound whole. A set is kept after its last user releases it and handed
// out again for the same pipeline layout over the same buffers: a decoded token binds the
// same weights and activation buffers as the one before, and writing its ~75 sets anew
// was host time before the device could start (docs/PERFORMANCE.md, seventeenth
// session). Kept sets that nobody uses are freed when the pool runs out. Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "gpu/context.h"
#include "gpu/device_buffer.h"
#include "gpu/pipeline_cache.h"

namespace ember::gpu {

class DescriptorSets {
 public:
  static constexpr uint32_t kMaxBindings = 11;  // attention.comp's, the most of any shader

  // Room for `max_sets` sets of up to kMaxBindings buffers each at once.
  static Result<std::unique_ptr<DescriptorSets>> create(Context& context, uint32_t max_sets);
  DescriptorSets(const DescriptorSets&) = delete;
  DescriptorSets& operator=(const DescriptorSets&) = delete;
  ~DescriptorSets();

  // A set for `pipeline` with buffers[i] at binding i, in use until release(set). Fails
  // (out of pool memory) when max_sets are in use.
  Result<VkDescriptorSet> allocate(const Pipeline& pipeline, std::initializer_list<const DeviceBuffer*> buffers);
  void release(VkDescriptorSet set);

  // Sets written so far, and requests answered with a kept one.
  uint64_t written() const;
  uint64_t reused() const;

 private:
  DescriptorSets(Context& context, uint32_t max_sets) : context_(context), max_sets_(max_sets) {}

  // A set layout and the serials of the buffers at each binding (0 past the last).
  struct Key {
    VkDescriptorSetLayout layout = VK_NULL_HANDLE;
    std::array<uint64_t, kMaxBindings> serials{};
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    size_t operator()(const Key& key) const;
  };
  struct Kept {
    VkDescriptorSet set = VK_NULL_HANDLE;
    uint32_t users = 0;
  };
  // Frees the kept sets nobody uses; whether there were any.
  bool free_unused();

  Context& context_;
  const uint32_t max_sets_;
  mutable std::mutex mutex_;
  VkDescriptorPool pool_ = VK_NULL_HANDLE;
  std::unordered_map<Key, Kept, KeyHash> kept_;
  std::unordered_map<VkDescriptorSet, Key> key_of_;
  uint64_t written_ = 0, reused_ = 0;
};

}  // namespace ember::gpu
