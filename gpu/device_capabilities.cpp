#include "gpu/device_capabilities.h"

#include <optional>
#include <string_view>

namespace ember::gpu {

namespace {

std::vector<VkExtensionProperties> device_extensions(const VulkanFunctions& vk, VkPhysicalDevice device) {
  uint32_t count = 0;
  if (vk.vkEnumerateDeviceExtensionProperties(device, nullptr, &count, nullptr) != VK_SUCCESS) return {};
  std::vector<VkExtensionProperties> extensions(count);
  if (vk.vkEnumerateDeviceExtensionProperties(device, nullptr, &count, extensions.data()) != VK_SUCCESS) return {};
  extensions.resize(count);
  return extensions;
}

bool has_extension(const std::vector<VkExtensionProperties>& extensions, std::string_view name) {
  for (const auto& extension : extensions)
    if (name == extension.extensionName) return true;
  return false;
}

std::string version_text(uint32_t version) {
  return std::to_string(VK_API_VERSION_MAJOR(version)) + "." + std::to_string(VK_API_VERSION_MINOR(version)) + "." +
         std::to_string(VK_API_VERSION_PATCH(version));
}

std::string mebibytes(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

const char* yes_no(bool value) { return value ? "yes" : "no"; }

std::vector<CooperativeMatrixShape> cooperative_shapes(const VulkanFunctions& vk, VkPhysicalDevice device) {
  if (vk.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV == nullptr) return {};
  uint32_t count = 0;
  if (vk.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(device, &count, nullptr) != VK_SUCCESS) return {};
  std::vector<VkCooperativeMatrixPropertiesNV> listed(count, {VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV});
  if (vk.vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(device, &count, listed.data()) != VK_SUCCESS) return {};
  std::vector<CooperativeMatrixShape> shapes;
  for (uint32_t i = 0; i < count; ++i) {
    const VkCooperativeMatrixPropertiesNV& p = listed[i];
    shapes.push_back({p.MSize, p.NSize, p.KSize, p.AType, p.BType, p.CType, p.DType, p.scope == VK_SCOPE_SUBGROUP_NV});
  }
  return shapes;
}

const char* component_name(VkComponentTypeNV type) {
  switch (type) {
    case VK_COMPONENT_TYPE_FLOAT16_NV: return "f16";
    case VK_COMPONENT_TYPE_FLOAT32_NV: return "f32";
    case VK_COMPONENT_TYPE_FLOAT64_NV: return "f64";
    case VK_COMPONENT_TYPE_SINT8_NV: return "i8";
    case VK_COMPONENT_TYPE_SINT16_NV: return "i16";
    case VK_COMPONENT_TYPE_SINT32_NV: return "i32";
    case VK_COMPONENT_TYPE_SINT64_NV: return "i64";
    case VK_COMPONENT_TYPE_UINT8_NV: return "u8";
    case VK_COMPONENT_TYPE_UINT16_NV: return "u16";
    case VK_COMPONENT_TYPE_UINT32_NV: return "u32";
    case VK_COMPONENT_TYPE_UINT64_NV: return "u64";
    default: return "?";
  }
}

}  // namespace

bool DeviceCapabilities::fp16_cooperative_matrix() const {
  if (!cooperative_matrix_nv_feature || !shader_float16 || !vulkan_memory_model || subgroup_size != 32) return false;
  for (const CooperativeMatrixShape& shape : cooperative_matrix_shapes)
    if (shape.m == 16 && shape.n == 16 && shape.k == 16 && shape.a == VK_COMPONENT_TYPE_FLOAT16_NV &&
        shape.b == VK_COMPONENT_TYPE_FLOAT16_NV && shape.c == VK_COMPONENT_TYPE_FLOAT32_NV &&
        shape.result == VK_COMPONENT_TYPE_FLOAT32_NV && shape.subgroup_scope)
      return true;
  return false;
}

std::string DeviceCapabilities::shortcoming() const {
  if (api_version < VK_API_VERSION_1_2) return "Vulkan " + version_text(api_version) + ", 1.2 is needed";
  if (!has_compute_queue) return "no compute queue";
  // The GEMVs, norms and attention reduce through subgroups.
  if (!subgroup_arithmetic_in_compute) return "no subgroup arithmetic in compute shaders";
  return "";
}

DeviceCapabilities query_capabilities(const VulkanFunctions& vk, VkPhysicalDevice device, uint32_t index) {
  DeviceCapabilities caps;
  caps.index = index;
  const auto extensions = device_extensions(vk, device);
  caps.integer_dot_product = has_extension(extensions, "VK_KHR_shader_integer_dot_product");
  caps.cooperative_matrix_khr = has_extension(extensions, "VK_KHR_cooperative_matrix");
  caps.cooperative_matrix_nv = has_extension(extensions, "VK_NV_cooperative_matrix");
  caps.memory_budget = has_extension(extensions, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);

  VkPhysicalDeviceProperties basic{};
  vk.vkGetPhysicalDeviceProperties(device, &basic);
  caps.api_version = basic.apiVersion;
  if (caps.api_version >= VK_API_VERSION_1_2) {
    VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceSubgroupProperties subgroup{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, &driver};
    VkPhysicalDeviceProperties2 properties{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &subgroup};
    vk.vkGetPhysicalDeviceProperties2(device, &properties);
    caps.driver_name = driver.driverName;
    caps.driver_info = driver.driverInfo;
    caps.subgroup_size = subgroup.subgroupSize;
    caps.subgroup_arithmetic_in_compute = (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) != 0 &&
                                          (subgroup.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) != 0;

    VkPhysicalDeviceShaderIntegerDotProductFeatures dot{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    VkPhysicalDevice8BitStorageFeatures storage8{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
    VkPhysicalDevice16BitStorageFeatures storage16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES, &storage8};
    VkPhysicalDeviceShaderFloat16Int8Features arithmetic{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES,
                                                         &storage16};
    // The integer dot product feature struct is only valid to chain where the device knows it.
    const bool knows_dot = caps.integer_dot_product || caps.api_version >= VK_API_VERSION_1_3;
    if (knows_dot) storage8.pNext = &dot;
    VkPhysicalDeviceVulkanMemoryModelFeatures memory_model{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES, &arithmetic};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cooperative{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV,
                                                            &memory_model};
    VkPhysicalDeviceFeatures2 features{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                       caps.cooperative_matrix_nv ? static_cast<void*>(&cooperative) : &memory_model};
    vk.vkGetPhysicalDeviceFeatures2(device, &features);
    caps.vulkan_memory_model = memory_model.vulkanMemoryModel;
    caps.cooperative_matrix_nv_feature = caps.cooperative_matrix_nv && cooperative.cooperativeMatrix;
    if (caps.cooperative_matrix_nv_feature) caps.cooperative_matrix_shapes = cooperative_shapes(vk, device);
    caps.shader_float16 = arithmetic.shaderFloat16;
    caps.shader_int8 = arithmetic.shaderInt8;
    caps.storage_buffer_16bit = storage16.storageBuffer16BitAccess;
    caps.storage_buffer_8bit = storage8.storageBuffer8BitAccess;
    caps.integer_dot_product = knows_dot && dot.shaderIntegerDotProduct;
  }
  caps.name = basic.deviceName;
  caps.type = basic.deviceType;
  caps.max_workgroup_invocations = basic.limits.maxComputeWorkGroupInvocations;
  for (int axis = 0; axis < 3; ++axis) caps.max_workgroup_count[axis] = basic.limits.maxComputeWorkGroupCount[axis];
  caps.max_shared_memory_bytes = basic.limits.maxComputeSharedMemorySize;
  caps.max_storage_buffer_range = basic.limits.maxStorageBufferRange;

  VkPhysicalDeviceMemoryBudgetPropertiesEXT budget{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
  VkPhysicalDeviceMemoryProperties2 memory{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
                                           caps.memory_budget ? &budget : nullptr};
  vk.vkGetPhysicalDeviceMemoryProperties2(device, &memory);
  for (uint32_t h = 0; h < memory.memoryProperties.memoryHeapCount; ++h) {
    const VkMemoryHeap& heap = memory.memoryProperties.memoryHeaps[h];
    caps.heaps.push_back({heap.size, (heap.flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0,
                          caps.memory_budget ? budget.heapBudget[h] : 0});
  }
  for (uint32_t t = 0; t < memory.memoryProperties.memoryTypeCount; ++t) {
    const VkMemoryType& type = memory.memoryProperties.memoryTypes[t];
    caps.memory_types.push_back({type.heapIndex, (type.propertyFlags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) != 0,
                                 (type.propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) != 0,
                                 (type.propertyFlags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) != 0,
                                 (type.propertyFlags & VK_MEMORY_PROPERTY_HOST_CACHED_BIT) != 0});
  }

  uint32_t family_count = 0;
  vk.vkGetPhysicalDeviceQueueFamilyProperties(device, &family_count, nullptr);
  std::vector<VkQueueFamilyProperties> families(family_count);
  vk.vkGetPhysicalDeviceQueueFamilyProperties(device, &family_count, families.data());
  // A compute family without graphics runs beside any display work, so it is preferred.
  std::optional<uint32_t> any_compute, compute_only;
  for (uint32_t f = 0; f < family_count; ++f) {
    const VkQueueFlags flags = families[f].queueFlags;
    if ((flags & VK_QUEUE_COMPUTE_BIT) == 0 || families[f].queueCount == 0) continue;
    if (!any_compute) any_compute = f;
    if ((flags & VK_QUEUE_GRAPHICS_BIT) == 0 && !compute_only) compute_only = f;
  }
  caps.has_compute_queue = any_compute.has_value();
  caps.compute_queue_family = compute_only.value_or(any_compute.value_or(0));
  if (caps.has_compute_queue) caps.timestamp_valid_bits = families[caps.compute_queue_family].timestampValidBits;
  caps.timestamp_period_ns = basic.limits.timestampPeriod;
  return caps;
}

int device_type_rank(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 4;
    default: return 3;
  }
}

const char* device_type_name(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU implementation";
    default: return "other";
  }
}

std::string describe(const DeviceCapabilities& caps) {
  std::string text = "device " + std::to_string(caps.index) + ": " + caps.name + " (" + device_type_name(caps.type) +
                     ", Vulkan " + version_text(caps.api_version) + ")\n";
  text += "  driver: " + caps.driver_name + (caps.driver_info.empty() ? "" : " " + caps.driver_info) + "\n";
  const std::string shortcoming = caps.shortcoming();
  text += "  usable: " + (shortcoming.empty() ? std::string("yes") : "no, " + shortcoming) + "\n";
  for (size_t h = 0; h < caps.heaps.size(); ++h) {
    const MemoryHeapInfo& heap = caps.heaps[h];
    text += "  heap " + std::to_string(h) + ": " + mebibytes(heap.bytes) + (heap.device_local ? ", device-local" : "") +
            (caps.memory_budget ? ", budget " + mebibytes(heap.budget_bytes) : "") + "\n";
  }
  for (size_t t = 0; t < caps.memory_types.size(); ++t) {
    const MemoryTypeInfo& type = caps.memory_types[t];
    std::string flags;
    const auto add = [&](bool present, const char* name) {
      if (present) flags += (flags.empty() ? "" : "|") + std::string(name);
    };
    add(type.device_local, "device-local");
    add(type.host_visible, "host-visible");
    add(type.host_coherent, "host-coherent");
    add(type.host_cached, "host-cached");
    text += "  memory type " + std::to_string(t) + ": heap " + std::to_string(type.heap) + ", " +
            (flags.empty() ? "no flags" : flags) + "\n";
  }
  text += "  subgroup size: " + std::to_string(caps.subgroup_size) +
          (caps.subgroup_arithmetic_in_compute ? " (arithmetic in compute)" : "") + "\n";
  text += "  workgroup: " + std::to_string(caps.max_workgroup_invocations) + " invocations, " +
          std::to_string(caps.max_shared_memory_bytes / 1024) + " KiB shared memory\n";
  text += std::string("  fp16 arithmetic: ") + yes_no(caps.shader_float16) + ", int8 arithmetic: " +
          yes_no(caps.shader_int8) + "\n";
  text += std::string("  16-bit storage: ") + yes_no(caps.storage_buffer_16bit) + ", 8-bit storage: " +
          yes_no(caps.storage_buffer_8bit) + "\n";
  text += std::string("  integer dot product: ") + yes_no(caps.integer_dot_product) + "\n";
  std::string cooperative;
  if (caps.cooperative_matrix_khr) cooperative = "VK_KHR_cooperative_matrix";
  if (caps.cooperative_matrix_nv) cooperative += (cooperative.empty() ? "" : ", ") + std::string("VK_NV_cooperative_matrix");
  text += "  cooperative matrix: " + (cooperative.empty() ? std::string("no") : cooperative) +
          (caps.cooperative_matrix_shapes.empty() ? "" : "; NV shapes:") + "\n";
  for (const CooperativeMatrixShape& shape : caps.cooperative_matrix_shapes)
    text += "    " + std::to_string(shape.m) + "x" + std::to_string(shape.n) + "x" + std::to_string(shape.k) + ": " +
            component_name(shape.a) + " x " + component_name(shape.b) + " + " + component_name(shape.c) + " -> " +
            component_name(shape.result) + (shape.subgroup_scope ? "" : " (not subgroup scope)") + "\n";
  if (caps.cooperative_matrix_nv)
    text += std::string("  fp16 cooperative-matrix GEMM: ") + yes_no(caps.fp16_cooperative_matrix()) + "\n";
  text += std::string("  memory budget: ") + (caps.memory_budget ? "VK_EXT_memory_budget" : "no") + "\n";
  return text;
}

}  // namespace ember::gpu
