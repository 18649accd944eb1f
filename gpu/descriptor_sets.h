// Descriptor sets for the module's compute pipelines, from one pool: every binding a
// storage buffer, bound whole. Thread-safe.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>

#include "gpu/context.h"
#include "gpu/device_buffer.h"
#include "gpu/pipeline_cache.h"

namespace ember::gpu {

class DescriptorSets {
 public:
  // Room for `max_sets` sets of up to 11 buffers each at once.
  static Result<std::unique_ptr<DescriptorSets>> create(Context& context, uint32_t max_sets);
  DescriptorSets(const DescriptorSets&) = delete;
  DescriptorSets& operator=(const DescriptorSets&) = delete;
  ~DescriptorSets();

  // A set for `pipeline` with buffers[i] at binding i. Fails (out of pool memory) when
  // max_sets are in use.
  Result<VkDescriptorSet> allocate(const Pipeline& pipeline, std::initializer_list<const DeviceBuffer*> buffers);
  void release(VkDescriptorSet set);

 private:
  explicit DescriptorSets(Context& context) : context_(context) {}

  Context& context_;
  std::mutex mutex_;
  VkDescriptorPool pool_ = VK_NULL_HANDLE;
};

}  // namespace ember::gpu
