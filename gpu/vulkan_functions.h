// The Vulkan entry points ember calls, loaded at run time from libvulkan.so.1 so that a
// binary built with Vulkan still starts on a machine without the loader (it then runs
// everything on the CPU). Nothing links against libvulkan; every call goes through this
// table, filled in three stages: global, per instance, per device.
#pragma once

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan_core.h>

#include "gpu/status.h"

namespace ember::gpu {

#define EMBER_VK_GLOBAL_FUNCTIONS(X) \
  X(vkCreateInstance)                \
  X(vkEnumerateInstanceVersion)      \
  X(vkEnumerateInstanceExtensionProperties)

#define EMBER_VK_INSTANCE_FUNCTIONS(X)       \
  X(vkDestroyInstance)                       \
  X(vkEnumeratePhysicalDevices)              \
  X(vkGetPhysicalDeviceProperties)           \
  X(vkGetPhysicalDeviceProperties2)          \
  X(vkGetPhysicalDeviceFeatures2)            \
  X(vkGetPhysicalDeviceMemoryProperties)     \
  X(vkGetPhysicalDeviceMemoryProperties2)    \
  X(vkGetPhysicalDeviceQueueFamilyProperties) \
  X(vkEnumerateDeviceExtensionProperties)    \
  X(vkCreateDevice)                          \
  X(vkGetDeviceProcAddr)

// Entry points of instance extensions: null where the loader or driver lacks them, which
// only disables what they serve.
#define EMBER_VK_OPTIONAL_INSTANCE_FUNCTIONS(X) X(vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)

#define EMBER_VK_DEVICE_FUNCTIONS(X) \
  X(vkDestroyDevice)                 \
  X(vkGetDeviceQueue)                \
  X(vkQueueSubmit)                   \
  X(vkDeviceWaitIdle)                \
  X(vkAllocateMemory)                \
  X(vkFreeMemory)                    \
  X(vkMapMemory)                     \
  X(vkCreateBuffer)                  \
  X(vkDestroyBuffer)                 \
  X(vkGetBufferMemoryRequirements)   \
  X(vkBindBufferMemory)              \
  X(vkCreateShaderModule)            \
  X(vkDestroyShaderModule)           \
  X(vkCreateDescriptorSetLayout)     \
  X(vkDestroyDescriptorSetLayout)    \
  X(vkCreatePipelineLayout)          \
  X(vkDestroyPipelineLayout)         \
  X(vkCreateComputePipelines)        \
  X(vkDestroyPipeline)               \
  X(vkCreateDescriptorPool)          \
  X(vkDestroyDescriptorPool)         \
  X(vkAllocateDescriptorSets)        \
  X(vkFreeDescriptorSets)            \
  X(vkUpdateDescriptorSets)          \
  X(vkCreateCommandPool)             \
  X(vkDestroyCommandPool)            \
  X(vkAllocateCommandBuffers)        \
  X(vkBeginCommandBuffer)            \
  X(vkEndCommandBuffer)              \
  X(vkCmdBindPipeline)               \
  X(vkCmdBindDescriptorSets)         \
  X(vkCmdPushConstants)              \
  X(vkCmdDispatch)                   \
  X(vkCmdCopyBuffer)                 \
  X(vkCmdPipelineBarrier)            \
  X(vkCreateFence)                   \
  X(vkDestroyFence)                  \
  X(vkWaitForFences)                 \
  X(vkGetFenceStatus)                \
  X(vkResetFences)                   \
  X(vkCreateQueryPool)               \
  X(vkDestroyQueryPool)              \
  X(vkCmdResetQueryPool)             \
  X(vkCmdWriteTimestamp)             \
  X(vkGetQueryPoolResults)

#define EMBER_VK_DECLARE_MEMBER(name) PFN_##name name = nullptr;

struct VulkanFunctions {
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;
  EMBER_VK_GLOBAL_FUNCTIONS(EMBER_VK_DECLARE_MEMBER)
  EMBER_VK_INSTANCE_FUNCTIONS(EMBER_VK_DECLARE_MEMBER)
  EMBER_VK_OPTIONAL_INSTANCE_FUNCTIONS(EMBER_VK_DECLARE_MEMBER)
  EMBER_VK_DEVICE_FUNCTIONS(EMBER_VK_DECLARE_MEMBER)
};

#undef EMBER_VK_DECLARE_MEMBER

// Opens libvulkan.so.1 (kept open for the life of the process: loader state outlives any
// one context) and fills the global entry points. Fails with a reason when there is no
// loader or it predates Vulkan 1.1's vkEnumerateInstanceVersion.
Status load_global_functions(VulkanFunctions& functions);
Status load_instance_functions(VulkanFunctions& functions, VkInstance instance);
Status load_device_functions(VulkanFunctions& functions, VkDevice device);

// "VK_ERROR_OUT_OF_DEVICE_MEMORY" and the like, for messages.
const char* result_name(VkResult result);

}  // namespace ember::gpu
