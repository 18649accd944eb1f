// Compute pipelines, created on first use for each (shader, specialization constants)
// and kept for the life of the cache: creating one compiles the shader for the device,
// which costs milliseconds to seconds, far more than any dispatch.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "gpu/context.h"
#include "gpu/shader_library.h"

namespace ember::gpu {

struct Pipeline {
  VkPipeline pipeline = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
};

class PipelineCache {
 public:
  explicit PipelineCache(Context& context) : context_(context) {}
  PipelineCache(const PipelineCache&) = delete;
  PipelineCache& operator=(const PipelineCache&) = delete;
  ~PipelineCache();

  // The pipeline of `shader` with constant_id i set to specialization[i]. The pointer
  // stays valid for the life of the cache. A failure is ErrorKind::unavailable, whatever
  // Vulkan said: the shader cannot run on this device, and callers run it elsewhere.
  Result<const Pipeline*> get(ShaderId shader, const std::vector<uint32_t>& specialization);
  // How many pipelines were created, for tests that check the cache reuses them.
  size_t created() const;

 private:
  Context& context_;
  mutable std::mutex mutex_;
  std::map<std::pair<ShaderId, std::vector<uint32_t>>, std::unique_ptr<Pipeline>> pipelines_;
};

}  // namespace ember::gpu
