#include "gpu/linear.h"

#include <algorithm>
#include <array>
#include <string>

namespace ember::gpu {

namespace {

constexpr uint32_t kGemmTile = 32;          // linear_gemm.comp's kTile
constexpr uint32_t kGemmInvocations = 256;  // linear_gemm.comp's 16 x 16 workgroup; Vulkan only promises 128
// One set per run() in flight; runs serialise on the queue, so few are ever live at once.
constexpr uint32_t kDescriptorSets = 64;

// linear_common.glsl's push constant block.
struct LinearPushConstants {
  uint32_t rows, k, n, has_bias, first_column, row_bytes;
};

const char* type_name(WeightType type) {
  switch (type) {
    case WeightType::f32: return "f32";
    case WeightType::f16: return "f16";
    case WeightType::q8_0: return "q8_0";
    case WeightType::q4_0: return "q4_0";
  }
  return "?";
}

Status invalid(std::string message) { return {ErrorKind::invalid_argument, "GPU linear: " + std::move(message)}; }

Status check(const LinearArgs& args) {
  if (args.x == nullptr || args.weights == nullptr || args.y == nullptr) return invalid("x, weights and y are required");
  if (args.rows == 0 || args.k == 0 || args.n == 0)
    return invalid("empty shape (rows " + std::to_string(args.rows) + ", k " + std::to_string(args.k) + ", n " +
                   std::to_string(args.n) + ")");
  const bool blocks = args.weight_type == WeightType::q8_0 || args.weight_type == WeightType::q4_0;
  if (blocks && args.k % 32 != 0)
    return invalid(std::string(type_name(args.weight_type)) + " weights need k a multiple of 32, not " +
                   std::to_string(args.k));
  const uint64_t x_elements = uint64_t{args.rows} * args.k;
  const uint64_t y_elements = uint64_t{args.rows} * args.n;
  const uint64_t weight_bytes = weight_row_bytes(args.weight_type, args.k) * args.n;
  // The shaders index with 32-bit integers.
  if (x_elements > UINT32_MAX || y_elements > UINT32_MAX || weight_bytes > UINT32_MAX)
    return invalid("more than 2^32 elements or weight bytes in one call");
  const auto too_small = [](const char* what, const DeviceBuffer& buffer, uint64_t needed) {
    return invalid(std::string(what) + " buffer holds " + std::to_string(buffer.bytes()) + " bytes, " +
                   std::to_string(needed) + " needed");
  };
  if (args.x->bytes() < x_elements * 4) return too_small("x", *args.x, x_elements * 4);
  if (args.weights->bytes() < weight_bytes) return too_small("weight", *args.weights, weight_bytes);
  if (args.bias != nullptr && args.bias->bytes() < uint64_t{args.n} * 4)
    return too_small("bias", *args.bias, uint64_t{args.n} * 4);
  if (args.y->bytes() < y_elements * 4) return too_small("y", *args.y, y_elements * 4);
  return {};
}

// Makes earlier transfer, shader and host writes visible to this dispatch, or this
// dispatch's writes visible to later copies, shaders and host reads.
void memory_barrier(const VulkanFunctions& vk, VkCommandBuffer commands, VkPipelineStageFlags source_stages,
                    VkAccessFlags source_access, VkPipelineStageFlags target_stages, VkAccessFlags target_access) {
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = source_access;
  barrier.dstAccessMask = target_access;
  vk.vkCmdPipelineBarrier(commands, source_stages, target_stages, 0, 1, &barrier, 0, nullptr, 0, nullptr);
}

}  // namespace

uint64_t weight_row_bytes(WeightType type, uint64_t k) {
  switch (type) {
    case WeightType::f32: return 4 * k;
    case WeightType::f16: return 2 * k;
    case WeightType::q8_0: return k / 32 * 34;
    case WeightType::q4_0: return k / 32 * 18;
  }
  return 0;
}

Result<std::unique_ptr<FusedLinear>> FusedLinear::create(Context& context, PipelineCache& pipelines) {
  std::unique_ptr<FusedLinear> linear(new FusedLinear(context, pipelines));
  const VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 4 * kDescriptorSets};
  VkDescriptorPoolCreateInfo info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  info.flags = VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT;
  info.maxSets = kDescriptorSets;
  info.poolSizeCount = 1;
  info.pPoolSizes = &size;
  EMBER_GPU_RETURN_IF_ERROR(vk_check(
      context.vk().vkCreateDescriptorPool(context.device(), &info, nullptr, &linear->descriptor_pool_),
      "vkCreateDescriptorPool"));
  return linear;
}

FusedLinear::~FusedLinear() {
  if (descriptor_pool_ != VK_NULL_HANDLE)
    context_.vk().vkDestroyDescriptorPool(context_.device(), descriptor_pool_, nullptr);
}

Status FusedLinear::run(const LinearArgs& args) {
  EMBER_GPU_RETURN_IF_ERROR(check(args));
  const bool gemv = args.path == LinearPath::gemv || (args.path == LinearPath::automatic && args.rows == 1);
  const DeviceCapabilities& caps = context_.capabilities();
  if (!gemv && caps.max_workgroup_invocations < kGemmInvocations)
    return {ErrorKind::unavailable, "GPU linear: the tiled GEMM needs workgroups of " + std::to_string(kGemmInvocations) +
                                        " invocations; " + caps.name + " allows " +
                                        std::to_string(caps.max_workgroup_invocations)};
  const uint32_t max_groups_x = caps.max_workgroup_count[0];
  const uint32_t max_groups_y = caps.max_workgroup_count[1];
  const uint32_t groups_y = gemv ? args.rows : (args.rows + kGemmTile - 1) / kGemmTile;
  if (groups_y > max_groups_y || (!gemv && (args.n + kGemmTile - 1) / kGemmTile > max_groups_x))
    return invalid("the shape needs more workgroups than the device dispatches (" + std::to_string(args.rows) +
                   " rows, n " + std::to_string(args.n) + ")");

  auto pipeline = pipelines_.get(gemv ? ShaderId::linear_gemv : ShaderId::linear_gemm,
                                 {static_cast<uint32_t>(args.weight_type), static_cast<uint32_t>(args.activation)});
  if (!pipeline) return pipeline.status();
  const VulkanFunctions& vk = context_.vk();
  const VkDevice device = context_.device();

  VkDescriptorSet set = VK_NULL_HANDLE;
  {
    std::lock_guard lock(descriptor_mutex_);
    VkDescriptorSetAllocateInfo allocate{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    allocate.descriptorPool = descriptor_pool_;
    allocate.descriptorSetCount = 1;
    allocate.pSetLayouts = &pipeline.value()->set_layout;
    EMBER_GPU_RETURN_IF_ERROR(vk_check(vk.vkAllocateDescriptorSets(device, &allocate, &set), "vkAllocateDescriptorSets"));
  }
  // Without a bias the shader never reads binding 2, but it must still name a buffer.
  const DeviceBuffer* bias = args.bias != nullptr ? args.bias : args.x;
  const std::array<VkDescriptorBufferInfo, 4> buffers{{{args.x->handle(), 0, VK_WHOLE_SIZE},
                                                       {args.weights->handle(), 0, VK_WHOLE_SIZE},
                                                       {bias->handle(), 0, VK_WHOLE_SIZE},
                                                       {args.y->handle(), 0, VK_WHOLE_SIZE}}};
  std::array<VkWriteDescriptorSet, 4> writes{};
  for (uint32_t b = 0; b < 4; ++b) {
    writes[b] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    writes[b].dstSet = set;
    writes[b].dstBinding = b;
    writes[b].descriptorCount = 1;
    writes[b].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[b].pBufferInfo = &buffers[b];
  }
  vk.vkUpdateDescriptorSets(device, static_cast<uint32_t>(writes.size()), writes.data(), 0, nullptr);

  LinearPushConstants push{args.rows, args.k, args.n, args.bias != nullptr ? 1u : 0u, 0,
                           static_cast<uint32_t>(weight_row_bytes(args.weight_type, args.k))};
  const Pipeline& chosen = *pipeline.value();
  const Status status = context_.run_and_wait([&](VkCommandBuffer commands) {
    memory_barrier(vk, commands, VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                   VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_HOST_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    vk.vkCmdBindPipeline(commands, VK_PIPELINE_BIND_POINT_COMPUTE, chosen.pipeline);
    vk.vkCmdBindDescriptorSets(commands, VK_PIPELINE_BIND_POINT_COMPUTE, chosen.layout, 0, 1, &set, 0, nullptr);
    if (gemv) {
      // One workgroup per output column: n may exceed the device's dispatch width.
      for (uint32_t first = 0; first < args.n; first += max_groups_x) {
        push.first_column = first;
        vk.vkCmdPushConstants(commands, chosen.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof push, &push);
        vk.vkCmdDispatch(commands, std::min(args.n - first, max_groups_x), groups_y, 1);
      }
    } else {
      vk.vkCmdPushConstants(commands, chosen.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof push, &push);
      vk.vkCmdDispatch(commands, (args.n + kGemmTile - 1) / kGemmTile, groups_y, 1);
    }
    memory_barrier(vk, commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                   VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                   VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_HOST_READ_BIT);
  });
  std::lock_guard lock(descriptor_mutex_);
  vk.vkFreeDescriptorSets(device, descriptor_pool_, 1, &set);
  return status;
}

}  // namespace ember::gpu
