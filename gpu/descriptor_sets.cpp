#include "gpu/descriptor_sets.h"

#include <string>

namespace ember::gpu {

Result<std::unique_ptr<DescriptorSets>> DescriptorSets::create(Context& context, uint32_t max_sets) {
  std::unique_ptr<DescriptorSets> sets(new DescriptorSets(context, max_sets));
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

size_t DescriptorSets::KeyHash::operator()(const Key& key) const {
  auto hash = reinterpret_cast<uint64_t>(key.layout);
  for (uint64_t serial : key.serials) hash = (hash ^ serial) * 0x100000001b3ULL;
  return static_cast<size_t>(hash);
}

Result<VkDescriptorSet> DescriptorSets::allocate(const Pipeline& pipeline,
                                                 std::initializer_list<const DeviceBuffer*> buffers) {
  if (buffers.size() > kMaxBindings)
    return Status{ErrorKind::invalid_argument, std::to_string(buffers.size()) + " buffers for one descriptor set; at most " +
                                                   std::to_string(kMaxBindings)};
  Key key{.layout = pipeline.set_layout};
  size_t binding = 0;
  for (const DeviceBuffer* buffer : buffers) key.serials[binding++] = buffer->serial();
  const VulkanFunctions& vk = context_.vk();
  std::lock_guard lock(mutex_);
  if (auto found = kept_.find(key); found != kept_.end()) {
    ++found->second.users;
    ++reused_;
    return found->second.set;
  }
  // Not every driver refuses sets past the pool's size, so the count is kept here too.
  if (kept_.size() >= max_sets_) free_unused();
  VkDescriptorSet set = VK_NULL_HANDLE;
  VkDescriptorSetAllocateInfo allocate{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
  allocate.descriptorPool = pool_;
  allocate.descriptorSetCount = 1;
  allocate.pSetLayouts = &pipeline.set_layout;
  VkResult result = vk.vkAllocateDescriptorSets(context_.device(), &allocate, &set);
  if ((result == VK_ERROR_OUT_OF_POOL_MEMORY || result == VK_ERROR_FRAGMENTED_POOL) && free_unused())
    result = vk.vkAllocateDescriptorSets(context_.device(), &allocate, &set);
  EMBER_GPU_RETURN_IF_ERROR(vk_check(result, "vkAllocateDescriptorSets"));
  std::array<VkDescriptorBufferInfo, kMaxBindings> infos{};
  std::array<VkWriteDescriptorSet, kMaxBindings> writes{};
  binding = 0;
  for (const DeviceBuffer* buffer : buffers) {
    infos[binding] = {buffer->handle(), 0, VK_WHOLE_SIZE};
    writes[binding] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    writes[binding].dstSet = set;
    writes[binding].dstBinding = static_cast<uint32_t>(binding);
    writes[binding].descriptorCount = 1;
    writes[binding].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[binding].pBufferInfo = &infos[binding];
    ++binding;
  }
  vk.vkUpdateDescriptorSets(context_.device(), static_cast<uint32_t>(binding), writes.data(), 0, nullptr);
  kept_.emplace(key, Kept{set, 1});
  key_of_.emplace(set, key);
  ++written_;
  return set;
}

void DescriptorSets::release(VkDescriptorSet set) {
  if (set == VK_NULL_HANDLE) return;
  std::lock_guard lock(mutex_);
  if (auto key = key_of_.find(set); key != key_of_.end()) --kept_.at(key->second).users;
}

bool DescriptorSets::free_unused() {
  bool freed = false;
  for (auto kept = kept_.begin(); kept != kept_.end();) {
    if (kept->second.users != 0) {
      ++kept;
      continue;
    }
    context_.vk().vkFreeDescriptorSets(context_.device(), pool_, 1, &kept->second.set);
    key_of_.erase(kept->second.set);
    kept = kept_.erase(kept);
    freed = true;
  }
  return freed;
}

uint64_t DescriptorSets::written() const {
  std::lock_guard lock(mutex_);
  return written_;
}

uint64_t DescriptorSets::reused() const {
  std::lock_guard lock(mutex_);
  return reused_;
}

}  // namespace ember::gpu
