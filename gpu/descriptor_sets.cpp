#include "gpu/descriptor_sets.h"

#include <array>
#include <string>

namespace ember::gpu {

namespace {
constexpr uint32_t kMaxBindings = 11;  // attention.comp's, the most of any shader
}

Result<std::unique_ptr<DescriptorSets>> DescriptorSets::create(Context& context, uint32_t max_sets) {
  std::unique_ptr<DescriptorSets> sets(new DescriptorSets(context));
  const VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kMaxBindings * max_sets};
  VkDescriptorPoolCreateInfo info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  info.flags = VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT;
  info.maxSets = max_sets;
  info.poolSizeCount = 1;
  info.pPoolSizes = &size;
  EMBER_GPU_RETURN_IF_ERROR(
      vk_check(context.vk().vkCreateDescriptorPool(context.device(), &info, nullptr, &sets->pool_),
               "vkCreateDescriptorPool"));
  return sets;
}

DescriptorSets::~DescriptorSets() {
  if (pool_ != VK_NULL_HANDLE) context_.vk().vkDestroyDescriptorPool(context_.device(), pool_, nullptr);
}

Result<VkDescriptorSet> DescriptorSets::allocate(const Pipeline& pipeline,
                                                 std::initializer_list<const DeviceBuffer*> buffers) {
  if (buffers.size() > kMaxBindings)
    return Status{ErrorKind::invalid_argument, std::to_string(buffers.size()) + " buffers for one descriptor set; at most " +
                                                   std::to_string(kMaxBindings)};
  const VulkanFunctions& vk = context_.vk();
  VkDescriptorSet set = VK_NULL_HANDLE;
  {
    std::lock_guard lock(mutex_);
    VkDescriptorSetAllocateInfo allocate{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    allocate.descriptorPool = pool_;
    allocate.descriptorSetCount = 1;
    allocate.pSetLayouts = &pipeline.set_layout;
    EMBER_GPU_RETURN_IF_ERROR(
        vk_check(vk.vkAllocateDescriptorSets(context_.device(), &allocate, &set), "vkAllocateDescriptorSets"));
  }
  std::array<VkDescriptorBufferInfo, kMaxBindings> infos{};
  std::array<VkWriteDescriptorSet, kMaxBindings> writes{};
  uint32_t binding = 0;
  for (const DeviceBuffer* buffer : buffers) {
    infos[binding] = {buffer->handle(), 0, VK_WHOLE_SIZE};
    writes[binding] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    writes[binding].dstSet = set;
    writes[binding].dstBinding = binding;
    writes[binding].descriptorCount = 1;
    writes[binding].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[binding].pBufferInfo = &infos[binding];
    ++binding;
  }
  vk.vkUpdateDescriptorSets(context_.device(), binding, writes.data(), 0, nullptr);
  return set;
}

void DescriptorSets::release(VkDescriptorSet set) {
  if (set == VK_NULL_HANDLE) return;
  std::lock_guard lock(mutex_);
  context_.vk().vkFreeDescriptorSets(context_.device(), pool_, 1, &set);
}

}  // namespace ember::gpu
