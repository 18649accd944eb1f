#include <dlfcn.h>

#include <mutex>
#include <string>

#include "gpu/vulkan_functions.h"

namespace ember::gpu {

namespace {

// dlopen once; a second context reuses the handle. The loader stays loaded so that
// function pointers held by any context never dangle.
PFN_vkGetInstanceProcAddr open_loader(std::string& error) {
  static std::once_flag once;
  static PFN_vkGetInstanceProcAddr entry = nullptr;
  static std::string open_error;
  std::call_once(once, [] {
    void* library = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      const char* reason = dlerror();
      open_error = std::string("cannot load libvulkan.so.1: ") + (reason ? reason : "unknown reason");
      return;
    }
    entry = reinterpret_cast<PFN_vkGetInstanceProcAddr>(dlsym(library, "vkGetInstanceProcAddr"));
    if (entry == nullptr) open_error = "libvulkan.so.1 has no vkGetInstanceProcAddr";
  });
  error = open_error;
  return entry;
}

}  // namespace

#define EMBER_VK_LOAD_GLOBAL(name)                                                                  \
  functions.name = reinterpret_cast<PFN_##name>(functions.vkGetInstanceProcAddr(nullptr, #name));   \
  if (functions.name == nullptr)                                                                    \
    return {ErrorKind::unavailable, "the Vulkan loader lacks " #name " (a Vulkan 1.0 loader; 1.2 is needed)"};

Status load_global_functions(VulkanFunctions& functions) {
  std::string error;
  functions.vkGetInstanceProcAddr = open_loader(error);
  if (functions.vkGetInstanceProcAddr == nullptr) return {ErrorKind::unavailable, error};
  EMBER_VK_GLOBAL_FUNCTIONS(EMBER_VK_LOAD_GLOBAL)
  return {};
}

#define EMBER_VK_LOAD_INSTANCE(name)                                                                  \
  functions.name = reinterpret_cast<PFN_##name>(functions.vkGetInstanceProcAddr(instance, #name));    \
  if (functions.name == nullptr) return {ErrorKind::unavailable, "the Vulkan instance lacks " #name};

#define EMBER_VK_LOAD_OPTIONAL_INSTANCE(name) \
  functions.name = reinterpret_cast<PFN_##name>(functions.vkGetInstanceProcAddr(instance, #name));

Status load_instance_functions(VulkanFunctions& functions, VkInstance instance) {
  EMBER_VK_INSTANCE_FUNCTIONS(EMBER_VK_LOAD_INSTANCE)
  EMBER_VK_OPTIONAL_INSTANCE_FUNCTIONS(EMBER_VK_LOAD_OPTIONAL_INSTANCE)
  return {};
}

#define EMBER_VK_LOAD_DEVICE(name)                                                            \
  functions.name = reinterpret_cast<PFN_##name>(functions.vkGetDeviceProcAddr(device, #name)); \
  if (functions.name == nullptr) return {ErrorKind::unavailable, "the Vulkan device lacks " #name};

Status load_device_functions(VulkanFunctions& functions, VkDevice device) {
  EMBER_VK_DEVICE_FUNCTIONS(EMBER_VK_LOAD_DEVICE)
  return {};
}

const char* result_name(VkResult result) {
  switch (result) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    default: return "VkResult error";
  }
}

}  // namespace ember::gpu
