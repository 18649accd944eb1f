// What one Vulkan physical device offers, as --list-devices prints it and as the module
// consults it before choosing a kernel or a memory type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gpu/vulkan_functions.h"

namespace ember::gpu {

struct MemoryHeapInfo {
  uint64_t bytes = 0;
  bool device_local = false;
  uint64_t budget_bytes = 0;  // VK_EXT_memory_budget's figure, 0 when the extension is absent
};

struct MemoryTypeInfo {
  uint32_t heap = 0;
  bool device_local = false;
  bool host_visible = false;
  bool host_coherent = false;
  bool host_cached = false;
};

// One matrix multiply-add shape the device runs cooperatively in a subgroup:
// D (m x n, result type) = A (m x k) * B (k x n) + C (m x n).
struct CooperativeMatrixShape {
  uint32_t m = 0, n = 0, k = 0;
  VkComponentTypeNV a = VK_COMPONENT_TYPE_FLOAT16_NV, b = VK_COMPONENT_TYPE_FLOAT16_NV;
  VkComponentTypeNV c = VK_COMPONENT_TYPE_FLOAT32_NV, result = VK_COMPONENT_TYPE_FLOAT32_NV;
  bool subgroup_scope = false;
};

struct DeviceCapabilities {
  uint32_t index = 0;  // position in vkEnumeratePhysicalDevices, what EMBER_VK_DEVICE names
  std::string name;
  VkPhysicalDeviceType type = VK_PHYSICAL_DEVICE_TYPE_OTHER;
  uint32_t api_version = 0;
  std::string driver_name;
  std::string driver_info;
  std::vector<MemoryHeapInfo> heaps;
  std::vector<MemoryTypeInfo> memory_types;
  uint32_t subgroup_size = 0;
  bool subgroup_arithmetic_in_compute = false;
  uint32_t max_workgroup_invocations = 0;
  uint32_t max_workgroup_count[3] = {0, 0, 0};
  uint32_t max_shared_memory_bytes = 0;
  uint64_t max_storage_buffer_range = 0;
  bool shader_float16 = false;
  bool shader_int8 = false;
  bool storage_buffer_16bit = false;
  bool storage_buffer_8bit = false;
  bool integer_dot_product = false;
  bool cooperative_matrix_khr = false;  // extension advertised
  bool cooperative_matrix_nv = false;
  bool cooperative_matrix_nv_feature = false;  // the extension's cooperativeMatrix feature
  std::vector<CooperativeMatrixShape> cooperative_matrix_shapes;  // VK_NV_cooperative_matrix's list
  bool vulkan_memory_model = false;            // shaders using cooperative matrices declare it
  bool memory_budget = false;           // VK_EXT_memory_budget
  bool has_compute_queue = false;
  uint32_t compute_queue_family = 0;
  // Timestamps on the compute queue: valid bits (0: none) and nanoseconds per tick.
  uint32_t timestamp_valid_bits = 0;
  float timestamp_period_ns = 0;

  // What gpu/shaders/linear_gemm_coopmat.comp needs: NV cooperative matrices with a
  // 16x16x16 fp16 x fp16 + fp32 shape in 32-wide subgroups, fp16 arithmetic and the
  // Vulkan memory model.
  bool fp16_cooperative_matrix() const;

  bool meets_minimum() const { return api_version >= VK_API_VERSION_1_2 && has_compute_queue; }
  // Why this device cannot serve ember, or "" if it can.
  std::string shortcoming() const;
};

DeviceCapabilities query_capabilities(const VulkanFunctions& vk, VkPhysicalDevice device, uint32_t index);

// Discrete GPUs first, then integrated, virtual, other and CPU implementations last.
int device_type_rank(VkPhysicalDeviceType type);
const char* device_type_name(VkPhysicalDeviceType type);

// The multi-line block --list-devices prints for one device.
std::string describe(const DeviceCapabilities& capabilities);

}  // namespace ember::gpu
