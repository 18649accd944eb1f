#include "gpu/pipeline_cache.h"

#include <string>

namespace ember::gpu {

namespace {

// Destroys what a half-built pipeline already holds when a later step fails.
void destroy(const VulkanFunctions& vk, VkDevice device, const Pipeline& pipeline) {
  if (pipeline.pipeline != VK_NULL_HANDLE) vk.vkDestroyPipeline(device, pipeline.pipeline, nullptr);
  if (pipeline.layout != VK_NULL_HANDLE) vk.vkDestroyPipelineLayout(device, pipeline.layout, nullptr);
  if (pipeline.set_layout != VK_NULL_HANDLE) vk.vkDestroyDescriptorSetLayout(device, pipeline.set_layout, nullptr);
}

Status build(const VulkanFunctions& vk, VkDevice device, FaultInjector& faults, const ShaderInfo& shader,
             const std::vector<uint32_t>& specialization, Pipeline& pipeline) {
  std::vector<VkDescriptorSetLayoutBinding> bindings(shader.storage_buffers);
  for (uint32_t b = 0; b < shader.storage_buffers; ++b)
    bindings[b] = {b, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
  VkDescriptorSetLayoutCreateInfo set_info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
  set_info.bindingCount = shader.storage_buffers;
  set_info.pBindings = bindings.data();
  EMBER_GPU_RETURN_IF_ERROR(vk_check(vk.vkCreateDescriptorSetLayout(device, &set_info, nullptr, &pipeline.set_layout),
                                     "vkCreateDescriptorSetLayout"));

  const VkPushConstantRange push{VK_SHADER_STAGE_COMPUTE_BIT, 0, shader.push_constant_bytes};
  VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  layout_info.setLayoutCount = 1;
  layout_info.pSetLayouts = &pipeline.set_layout;
  layout_info.pushConstantRangeCount = shader.push_constant_bytes > 0 ? 1 : 0;
  layout_info.pPushConstantRanges = &push;
  EMBER_GPU_RETURN_IF_ERROR(
      vk_check(vk.vkCreatePipelineLayout(device, &layout_info, nullptr, &pipeline.layout), "vkCreatePipelineLayout"));

  VkShaderModuleCreateInfo module_info{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  module_info.codeSize = shader.spirv.size_bytes();
  module_info.pCode = shader.spirv.data();
  VkShaderModule module = VK_NULL_HANDLE;
  EMBER_GPU_RETURN_IF_ERROR(vk_check(vk.vkCreateShaderModule(device, &module_info, nullptr, &module),
                                     (std::string("vkCreateShaderModule (") + shader.name + ")").c_str()));

  std::vector<VkSpecializationMapEntry> entries(specialization.size());
  for (uint32_t i = 0; i < specialization.size(); ++i)
    entries[i] = {i, static_cast<uint32_t>(i * sizeof(uint32_t)), sizeof(uint32_t)};
  VkSpecializationInfo specialization_info{static_cast<uint32_t>(entries.size()), entries.data(),
                                           specialization.size() * sizeof(uint32_t), specialization.data()};
  VkComputePipelineCreateInfo info{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  info.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
  info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  info.stage.module = module;
  info.stage.pName = "main";
  info.stage.pSpecializationInfo = &specialization_info;
  info.layout = pipeline.layout;
  const VkResult injected = faults.take(InjectedFault::pipeline_creation);
  const VkResult result = injected != VK_SUCCESS
                              ? injected
                              : vk.vkCreateComputePipelines(device, VK_NULL_HANDLE, 1, &info, nullptr, &pipeline.pipeline);
  vk.vkDestroyShaderModule(device, module, nullptr);
  return vk_check(result, (std::string("vkCreateComputePipelines (") + shader.name + ")").c_str());
}

}  // namespace

PipelineCache::~PipelineCache() {
  for (const auto& [key, pipeline] : pipelines_) destroy(context_.vk(), context_.device(), *pipeline);
}

Result<const Pipeline*> PipelineCache::get(ShaderId shader, const std::vector<uint32_t>& specialization) {
  std::lock_guard lock(mutex_);
  auto key = std::make_pair(shader, specialization);
  if (auto found = pipelines_.find(key); found != pipelines_.end()) return static_cast<const Pipeline*>(found->second.get());
  auto pipeline = std::make_unique<Pipeline>();
  if (Status status = build(context_.vk(), context_.device(), context_.faults(), shader_info(shader), specialization,
                            *pipeline);
      !status.ok()) {
    destroy(context_.vk(), context_.device(), *pipeline);
    // Whatever the result, the shader cannot run here: callers fall back, not fail.
    return Status{ErrorKind::unavailable, status.message()};
  }
  const Pipeline* created = pipeline.get();
  pipelines_.emplace(std::move(key), std::move(pipeline));
  return created;
}

size_t PipelineCache::created() const {
  std::lock_guard lock(mutex_);
  return pipelines_.size();
}

}  // namespace ember::gpu
