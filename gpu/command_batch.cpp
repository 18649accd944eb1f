#include "gpu/command_batch.h"

#include <atomic>

#include <algorithm>
#include <string>

namespace ember::gpu {

CommandBatch::CommandBatch(Context& context, DescriptorSets& sets) : context_(context), sets_(sets) {
  static std::atomic<uint64_t> next_serial{1};
  serial_ = next_serial.fetch_add(1, std::memory_order_relaxed);
}

void memory_barrier(const VulkanFunctions& vk, VkCommandBuffer commands, VkPipelineStageFlags source_stages,
                    VkAccessFlags source_access, VkPipelineStageFlags target_stages, VkAccessFlags target_access) {
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = source_access;
  barrier.dstAccessMask = target_access;
  vk.vkCmdPipelineBarrier(commands, source_stages, target_stages, 0, 1, &barrier, 0, nullptr, 0, nullptr);
}

Result<std::array<uint32_t, 3>> flat_grid(const Context& context, uint64_t groups) {
  const uint32_t width = context.capabilities().max_workgroup_count[0];
  const uint64_t x = std::min<uint64_t>(std::max<uint64_t>(groups, 1), width);
  const uint64_t y = (groups + x - 1) / x;
  if (y > context.capabilities().max_workgroup_count[1])
    return Status{ErrorKind::invalid_argument, std::to_string(groups) + " workgroups are more than the device dispatches"};
  return std::array<uint32_t, 3>{static_cast<uint32_t>(x), static_cast<uint32_t>(std::max<uint64_t>(y, 1)), 1};
}

CommandBatch::~CommandBatch() {
  for (VkDescriptorSet set : owned_sets_) sets_.release(set);
}

Result<VkDescriptorSet> CommandBatch::descriptor_set(const Pipeline& pipeline,
                                                     std::initializer_list<const DeviceBuffer*> buffers) {
  auto set = sets_.allocate(pipeline, buffers);
  if (set) owned_sets_.push_back(set.value());
  return set;
}

void CommandBatch::hold(std::mutex& mutex) {
  for (const auto& lock : held_)
    if (lock.mutex() == &mutex) return;
  held_.emplace_back(mutex);
}

void CommandBatch::record(Context::Pieces& pieces, const Context::StepMarker* after_dispatch, const AddMore& add_more) {
  const auto start = std::chrono::steady_clock::now();
  const VulkanFunctions& vk = context_.vk();
  // Only the first barrier orders the dispatches after copies and host writes from
  // before the batch; a batch records nothing but dispatches, so the later ones wait for
  // shaders alone. The narrower barrier measured 3.4 against 4.3 us per tiny dispatch on
  // the H200, and decoding M in q4_0 18% faster (docs/PERFORMANCE.md, "Fifth session").
  bool first_barrier = true;
  for (uint32_t index = 0;; ++index) {
    while (index == dispatches_.size() && add_more && add_more()) {
    }
    if (index == dispatches_.size()) break;
    const Dispatch& dispatch = dispatches_[index];
    // The H200 took 1.6 us of the host's time to record a dispatch and at least 2.3 us of
    // its own to run one (bench-gpu BM_BatchHostCost), so after the first piece the host
    // keeps ahead; only the first piece's recording is left for the device to wait on.
    if (starts_piece(index)) {
      if (pieces.count() == 1) recording_before_submission_ = std::chrono::steady_clock::now() - start;
      pieces.next_piece();
    }
    const VkCommandBuffer commands = pieces.commands();
    if (dispatch.barrier_before && first_barrier)
      memory_barrier(vk, commands,
                     VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                     VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_HOST_WRITE_BIT,
                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    else if (dispatch.barrier_before)
      memory_barrier(vk, commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    first_barrier = first_barrier && !dispatch.barrier_before;
    const Pipeline& pipeline = *dispatch.pipeline;
    vk.vkCmdBindPipeline(commands, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.pipeline);
    vk.vkCmdBindDescriptorSets(commands, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.layout, 0, 1, &dispatch.set, 0,
                               nullptr);
    if (dispatch.push_words > 0)
      vk.vkCmdPushConstants(commands, pipeline.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                            dispatch.push_words * sizeof(uint32_t), dispatch.push.data());
    vk.vkCmdDispatch(commands, dispatch.groups[0], dispatch.groups[1], dispatch.groups[2]);
    if (after_dispatch != nullptr) (*after_dispatch)(index);
  }
  const VkCommandBuffer commands = pieces.commands();
  memory_barrier(vk, commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                 VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                 VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_HOST_READ_BIT);
  for (const CopyToHost& copy : copies_to_host_) {
    const VkBufferCopy region{0, 0, copy.bytes};
    vk.vkCmdCopyBuffer(commands, copy.from->handle(), copy.to->handle(), 1, &region);
  }
  if (!copies_to_host_.empty())
    memory_barrier(vk, commands, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                   VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
  recording_time_ = std::chrono::steady_clock::now() - start;
  if (pieces.count() == 1) recording_before_submission_ = recording_time_;
}

bool CommandBatch::starts_piece(uint32_t index) {
  for (uint32_t start = kFirstPieceDispatches, size = kFirstPieceDispatches; start <= index;
       size = std::min(2 * size, kDispatchesPerPiece), start += size)
    if (start == index) return true;
  return false;
}

uint32_t CommandBatch::pieces_for(uint32_t dispatches) {
  uint32_t pieces = dispatches > 0 ? 1 : 0;
  for (uint32_t index = 0; index < dispatches; ++index) pieces += starts_piece(index) ? 1 : 0;
  return std::min(pieces, Context::kMostPieces);
}

Status CommandBatch::run(const AddMore& add_more) {
  if (dispatches_.empty() && !add_more) return {};
  return context_.run_pieces_and_wait([&](Context::Pieces& pieces) { record(pieces, nullptr, add_more); });
}

Result<double> CommandBatch::run_timed(const AddMore& add_more) {
  if (dispatches_.empty() && !add_more) return 0.0;
  return context_.run_pieces_and_time([&](Context::Pieces& pieces) { record(pieces, nullptr, add_more); });
}

Result<std::vector<double>> CommandBatch::run_timed_each() {
  if (dispatches_.empty()) return std::vector<double>{};
  return context_.run_and_time_steps(static_cast<uint32_t>(dispatches_.size()),
                                     [&](Context::Pieces& pieces, const Context::StepMarker& mark) {
                                       record(pieces, &mark);
                                     });
}

}  // namespace ember::gpu
