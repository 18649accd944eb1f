#include "gpu/linear.h"

#include <algorithm>
#include <array>
#include <utility>
#include <string>

namespace ember::gpu {

namespace {

constexpr uint32_t kGemmTile = 32;          // linear_gemm.comp's kTile
constexpr uint32_t kFloatGemmTile = 128;    // linear_gemm_float.comp's kTile
constexpr uint32_t kGemmInvocations = 256;  // linear_gemm.comp's 16 x 16 workgroup; Vulkan only promises 128
constexpr uint32_t kCoopmatTile = 128;         // linear_gemm_coopmat.comp's kTile, in kSubgroups of 32
constexpr uint32_t kCoopmatInvocations = 128;  // its workgroup
constexpr uint32_t kCoopmatSharedBytes = 2 * 128 * 40 * 2 + 4 * 256 * 4;  // its two f16 slices and the staging
// One or two sets per layer of a batch until it has run: room for a whole model's layers
// of one forward pass (a full pool makes add() fail, and the caller runs what it has).
constexpr uint32_t kDescriptorSets = 512;
constexpr uint32_t kQuantizeInvocations = 64;  // quantize_rows_q8.comp's workgroup
// Its X_LAYOUT for each reader, and the bytes of one block of 32 in that layout.
enum class XLayout : uint32_t { bytes, q4_0_pairs };
constexpr uint64_t kQuantizedBlockBytes[] = {40, 80};
constexpr uint32_t kQuantizePushBytes = 8;     // its push constants: rows, k

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

std::string cooperative_matrix_shortcoming(const DeviceCapabilities& caps, WeightType type, uint32_t k) {
  if (type != WeightType::f16) return std::string("the cooperative-matrix GEMM takes f16 weights, not ") + type_name(type);
  if (k % 8 != 0) return "the cooperative-matrix GEMM needs k a multiple of 8, not " + std::to_string(k);
  if (!caps.fp16_cooperative_matrix())
    return caps.name + " has no 16x16x16 fp16 cooperative matrices in 32-wide subgroups (VK_NV_cooperative_matrix)";
  if (caps.max_workgroup_invocations < kCoopmatInvocations || caps.max_shared_memory_bytes < kCoopmatSharedBytes)
    return caps.name + " lacks the cooperative-matrix GEMM's " + std::to_string(kCoopmatInvocations) + " invocations and " +
           std::to_string(kCoopmatSharedBytes) + " bytes of shared memory per workgroup";
  return "";
}

Result<std::unique_ptr<FusedLinear>> FusedLinear::create(Context& context, PipelineCache& pipelines,
                                                         Allocator& allocator) {
  std::unique_ptr<FusedLinear> linear(new FusedLinear(context, pipelines, allocator));
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

Result<VkDescriptorSet> FusedLinear::descriptor_set(const Pipeline& pipeline,
                                                    std::initializer_list<const DeviceBuffer*> buffers) {
  const VulkanFunctions& vk = context_.vk();
  VkDescriptorSet set = VK_NULL_HANDLE;
  {
    std::lock_guard lock(descriptor_mutex_);
    VkDescriptorSetAllocateInfo allocate{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    allocate.descriptorPool = descriptor_pool_;
    allocate.descriptorSetCount = 1;
    allocate.pSetLayouts = &pipeline.set_layout;
    EMBER_GPU_RETURN_IF_ERROR(
        vk_check(vk.vkAllocateDescriptorSets(context_.device(), &allocate, &set), "vkAllocateDescriptorSets"));
  }
  std::array<VkDescriptorBufferInfo, 4> infos{};
  std::array<VkWriteDescriptorSet, 4> writes{};
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

void FusedLinear::release(VkDescriptorSet set) {
  if (set == VK_NULL_HANDLE) return;
  std::lock_guard lock(descriptor_mutex_);
  context_.vk().vkFreeDescriptorSets(context_.device(), descriptor_pool_, 1, &set);
}

Status FusedLinear::run(const LinearArgs& args) {
  LinearBatch batch(*this);
  EMBER_GPU_RETURN_IF_ERROR(batch.add(args));
  return batch.run();
}

Result<double> FusedLinear::run_timed(const LinearArgs& args) {
  LinearBatch batch(*this);
  EMBER_GPU_RETURN_IF_ERROR(batch.add(args));
  return batch.run_timed();
}

// Everything one linear layer's dispatches need, gathered by LinearBatch::add and
// recorded by LinearBatch::run.
struct RecordedLinear {
  const Pipeline* pipeline = nullptr;
  VkDescriptorSet set = VK_NULL_HANDLE;
  const Pipeline* quantize_pipeline = nullptr;  // null: x is read as it is
  VkDescriptorSet quantize_set = VK_NULL_HANDLE;
  LinearPushConstants push{};
  bool gemv = false;
  uint32_t groups_x = 0, groups_y = 0;  // the GEMM's grid; the GEMV's rows
  uint32_t quantize_groups_x = 0, quantize_groups_y = 0;
};

LinearBatch::LinearBatch(FusedLinear& linear) : linear_(linear), scratch_lock_(linear.quantized_x_mutex_) {}

LinearBatch::~LinearBatch() {
  for (const RecordedLinear& recorded : recorded_) {
    linear_.release(recorded.set);
    linear_.release(recorded.quantize_set);
  }
}

size_t LinearBatch::size() const { return recorded_.size(); }

Status LinearBatch::add(const LinearArgs& args) {
  EMBER_GPU_RETURN_IF_ERROR(check(args));
  Context& context = linear_.context_;
  const bool gemv = args.path == LinearPath::gemv || (args.path == LinearPath::automatic && args.rows == 1);
  const DeviceCapabilities& caps = context.capabilities();
  const std::string cooperative_shortcoming = cooperative_matrix_shortcoming(caps, args.weight_type, args.k);
  if (args.path == LinearPath::cooperative_matrix && !cooperative_shortcoming.empty())
    return Status{ErrorKind::unavailable, "GPU linear: " + cooperative_shortcoming};
  const bool cooperative = args.path == LinearPath::cooperative_matrix ||
                           (args.path == LinearPath::automatic && !gemv && cooperative_shortcoming.empty());
  const bool block_weights = args.weight_type == WeightType::q8_0 || args.weight_type == WeightType::q4_0;
  const bool quantize_x = block_weights;
  if (!gemv && !cooperative && caps.max_workgroup_invocations < kGemmInvocations)
    return Status{ErrorKind::unavailable, "GPU linear: the tiled GEMM needs workgroups of " +
                                              std::to_string(kGemmInvocations) + " invocations; " + caps.name +
                                              " allows " + std::to_string(caps.max_workgroup_invocations)};
  const uint32_t max_groups_x = caps.max_workgroup_count[0];
  const uint32_t max_groups_y = caps.max_workgroup_count[1];
  const uint32_t tile = cooperative ? kCoopmatTile : block_weights ? kGemmTile : kFloatGemmTile;
  RecordedLinear recorded;
  recorded.gemv = gemv;
  recorded.groups_x = gemv ? 0 : (args.n + tile - 1) / tile;
  recorded.groups_y = gemv ? args.rows : (args.rows + tile - 1) / tile;
  // quantize_rows_q8.comp covers its blocks with a grid of max_groups_x x max_groups_y groups of 64.
  const uint64_t x_blocks = uint64_t{args.rows} * args.k / 32;
  const uint64_t quantize_groups = (x_blocks + kQuantizeInvocations - 1) / kQuantizeInvocations;
  recorded.quantize_groups_x = static_cast<uint32_t>(std::min<uint64_t>(quantize_groups, max_groups_x));
  const uint64_t quantize_groups_y =
      (quantize_groups + recorded.quantize_groups_x - 1) / std::max(recorded.quantize_groups_x, 1u);
  if (recorded.groups_y > max_groups_y || recorded.groups_x > max_groups_x ||
      (quantize_x && quantize_groups_y > max_groups_y))
    return invalid("the shape needs more workgroups than the device dispatches (" + std::to_string(args.rows) +
                   " rows, n " + std::to_string(args.n) + ")");
  recorded.quantize_groups_y = static_cast<uint32_t>(quantize_groups_y);

  const ShaderId shader = gemv          ? (block_weights ? ShaderId::linear_gemv_blocks : ShaderId::linear_gemv)
                          : cooperative ? ShaderId::linear_gemm_coopmat
                          : block_weights ? ShaderId::linear_gemm
                                          : ShaderId::linear_gemm_float;
  auto pipeline = linear_.pipelines_.get(
      shader, {static_cast<uint32_t>(args.weight_type), static_cast<uint32_t>(args.activation)});
  if (!pipeline) return pipeline.status();
  recorded.pipeline = pipeline.value();
  DeviceBuffer& scratch = linear_.quantized_x_;
  if (quantize_x) {
    const XLayout layout = gemv && args.weight_type == WeightType::q4_0 ? XLayout::q4_0_pairs : XLayout::bytes;
    auto found = linear_.pipelines_.get(ShaderId::quantize_rows_q8, {static_cast<uint32_t>(layout)});
    if (!found) return found.status();
    recorded.quantize_pipeline = found.value();
    const uint64_t needed = x_blocks * kQuantizedBlockBytes[static_cast<uint32_t>(layout)];
    if (scratch.bytes() < needed) {
      // Layers recorded before this one keep the smaller buffer until the batch has run.
      auto grown = DeviceBuffer::create(linear_.allocator_, needed, MemoryUse::device);
      if (!grown) return grown.status();
      retired_scratch_.push_back(std::exchange(scratch, std::move(grown.value())));
    }
  }

  // Without a bias the shader never reads binding 2, but it must still name a buffer.
  const DeviceBuffer* bias = args.bias != nullptr ? args.bias : args.weights;
  const DeviceBuffer* x = quantize_x ? &scratch : args.x;
  auto set = linear_.descriptor_set(*recorded.pipeline, {x, args.weights, bias, args.y});
  if (!set) return set.status();
  recorded.set = set.value();
  if (quantize_x) {
    auto made = linear_.descriptor_set(*recorded.quantize_pipeline, {args.x, &scratch});
    if (!made) {
      linear_.release(recorded.set);
      return made.status();
    }
    recorded.quantize_set = made.value();
  }
  recorded.push = {args.rows, args.k, args.n, args.bias != nullptr ? 1u : 0u, 0,
                   static_cast<uint32_t>(weight_row_bytes(args.weight_type, args.k))};
  recorded_.push_back(recorded);
  return {};
}

void LinearBatch::record(VkCommandBuffer commands) const {
  const VulkanFunctions& vk = linear_.context_.vk();
  const uint32_t max_groups_x = linear_.context_.capabilities().max_workgroup_count[0];
  // Earlier transfers, dispatches and host writes, this batch's layers included, are
  // visible to each dispatch; the last one's writes to what follows the batch.
  const auto barrier_before_dispatch = [&] {
    memory_barrier(vk, commands,
                   VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                   VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_HOST_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
  };
  for (const RecordedLinear& layer : recorded_) {
    LinearPushConstants push = layer.push;
    barrier_before_dispatch();
    if (layer.quantize_pipeline != nullptr) {
      const Pipeline& quantize = *layer.quantize_pipeline;
      vk.vkCmdBindPipeline(commands, VK_PIPELINE_BIND_POINT_COMPUTE, quantize.pipeline);
      vk.vkCmdBindDescriptorSets(commands, VK_PIPELINE_BIND_POINT_COMPUTE, quantize.layout, 0, 1, &layer.quantize_set,
                                 0, nullptr);
      vk.vkCmdPushConstants(commands, quantize.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, kQuantizePushBytes, &push);
      vk.vkCmdDispatch(commands, layer.quantize_groups_x, layer.quantize_groups_y, 1);
      barrier_before_dispatch();
    }
    const Pipeline& chosen = *layer.pipeline;
    vk.vkCmdBindPipeline(commands, VK_PIPELINE_BIND_POINT_COMPUTE, chosen.pipeline);
    vk.vkCmdBindDescriptorSets(commands, VK_PIPELINE_BIND_POINT_COMPUTE, chosen.layout, 0, 1, &layer.set, 0, nullptr);
    if (layer.gemv) {
      // One workgroup per output column: n may exceed the device's dispatch width.
      for (uint32_t first = 0; first < push.n; first += max_groups_x) {
        push.first_column = first;
        vk.vkCmdPushConstants(commands, chosen.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof push, &push);
        vk.vkCmdDispatch(commands, std::min(push.n - first, max_groups_x), layer.groups_y, 1);
      }
    } else {
      vk.vkCmdPushConstants(commands, chosen.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof push, &push);
      vk.vkCmdDispatch(commands, layer.groups_x, layer.groups_y, 1);
    }
  }
  memory_barrier(vk, commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                 VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                 VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_HOST_READ_BIT);
}

Status LinearBatch::run() {
  if (recorded_.empty()) return {};
  return linear_.context_.run_and_wait([&](VkCommandBuffer commands) { record(commands); });
}

Result<double> LinearBatch::run_timed() {
  if (recorded_.empty()) return 0.0;
  return linear_.context_.run_and_time([&](VkCommandBuffer commands) { record(commands); });
}

}  // namespace ember::gpu
