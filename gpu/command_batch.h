// Compute dispatches recorded one after another into one command buffer and submitted
// once: a chain of kernels (linear layers, norms, elementwise ops) makes one round trip
// to the device instead of one each. Each dispatch sees the writes of those before it (a
// memory barrier precedes it), and what the batch wrote is visible to copies and host
// reads after run(). A batch owns what its dispatches use until it is destroyed: their
// descriptor sets, buffers handed to keep(), and kernel mutexes handed to hold() (a
// kernel's scratch buffer, say), so one thread must not use such a kernel outside the
// batch while it holds the batch.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <vector>

#include "gpu/context.h"
#include "gpu/descriptor_sets.h"
#include "gpu/device_buffer.h"
#include "gpu/pipeline_cache.h"

namespace ember::gpu {

struct Dispatch {
  const Pipeline* pipeline = nullptr;
  VkDescriptorSet set = VK_NULL_HANDLE;
  std::array<uint32_t, 9> push{};  // the shader's push constants, push_words of them
  uint32_t push_words = 0;
  std::array<uint32_t, 3> groups{1, 1, 1};
  // False for a dispatch that continues the one before over other outputs (it reads
  // nothing the one before writes).
  bool barrier_before = true;
};

class CommandBatch {
 public:
  CommandBatch(Context& context, DescriptorSets& sets);
  CommandBatch(const CommandBatch&) = delete;
  CommandBatch& operator=(const CommandBatch&) = delete;
  ~CommandBatch();

  Context& context() { return context_; }
  // A descriptor set that lives as long as the batch.
  Result<VkDescriptorSet> descriptor_set(const Pipeline& pipeline, std::initializer_list<const DeviceBuffer*> buffers);
  void add(const Dispatch& dispatch) { dispatches_.push_back(dispatch); }
  void keep(DeviceBuffer buffer) { kept_.push_back(std::move(buffer)); }
  // After every dispatch, `bytes` of `from` copied into `to` (host-visible): the host may
  // read `to` once run() returns, with no submission of its own.
  void copy_to_host(const DeviceBuffer& from, const DeviceBuffer& to, uint64_t bytes) {
    copies_to_host_.push_back({&from, &to, bytes});
  }
  // Locks `mutex` until the batch is gone, unless the batch already holds it.
  void hold(std::mutex& mutex);
  size_t dispatches() const { return dispatches_.size(); }
  // Dispatches that wait for the ones before them (Dispatch::barrier_before).
  size_t barriers() const {
    return static_cast<size_t>(std::count_if(dispatches_.begin(), dispatches_.end(),
                                             [](const Dispatch& d) { return d.barrier_before; }));
  }
  // Unique to this batch in the process (an address may be reused by a later batch).
  uint64_t serial() const { return serial_; }
  // The host's time in the last run's recording of the commands (vkCmd* calls, and the
  // submissions of pieces between them), which happens inside run(); and the part of it
  // before the first piece went to the device, which the device cannot overlap.
  std::chrono::nanoseconds recording_time() const { return recording_time_; }
  std::chrono::nanoseconds recording_before_submission() const { return recording_before_submission_; }

  // Records every dispatch, submits and waits (nothing to do for an empty batch). A long
  // batch goes in pieces, each submitted once recorded (Context::Pieces), so the device
  // starts on the first while the host records the rest: kFirstPieceDispatches, then
  // each piece twice the one before, up to kDispatchesPerPiece. A short first piece lets
  // the device start sooner; longer ones after it cost fewer submissions.
  static constexpr uint32_t kFirstPieceDispatches = 8;
  static constexpr uint32_t kDispatchesPerPiece = 32;
  // Whether dispatch `index` begins a piece other than the first.
  static bool starts_piece(uint32_t index);
  // The submissions a batch of `dispatches` makes (Context::kMostPieces at most).
  static uint32_t pieces_for(uint32_t dispatches);
  // `add_more`, where given, adds dispatches during the recording: it is called whenever
  // the recording has caught up with those added so far, until it returns false. So the
  // host prepares later dispatches while the device runs the pieces already submitted.
  // It runs under the context's lock on its piece buffers (Context::run_pieces_and_wait),
  // so what it locks (a kernel's mutex, through hold()) must not be held by a thread
  // waiting to run a batch on the same context.
  using AddMore = std::function<bool()>;
  Status run(const AddMore& add_more = {});
  // run(), returning the seconds the device spent on the dispatches.
  Result<double> run_timed(const AddMore& add_more = {});
  // run(), returning the seconds of each dispatch in order (from the end of the one
  // before, barrier included; see Context::run_and_time_steps).
  Result<std::vector<double>> run_timed_each();

 private:
  // `after_dispatch`, where given, is called with each dispatch's index once it is recorded.
  void record(Context::Pieces& pieces, const Context::StepMarker* after_dispatch = nullptr,
              const AddMore& add_more = {});

  Context& context_;
  DescriptorSets& sets_;
  uint64_t serial_;
  std::vector<Dispatch> dispatches_;
  struct CopyToHost {
    const DeviceBuffer* from;
    const DeviceBuffer* to;
    uint64_t bytes;
  };
  std::vector<CopyToHost> copies_to_host_;
  std::vector<VkDescriptorSet> owned_sets_;
  std::vector<DeviceBuffer> kept_;
  std::vector<std::unique_lock<std::mutex>> held_;
  std::chrono::nanoseconds recording_time_{0};
  std::chrono::nanoseconds recording_before_submission_{0};
};

// A grid of `groups` workgroups within the device's per-dimension limits: x as wide as
// allowed, y as many rows of that as needed (shaders flatten it back with
// gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x). Fails when even that is too few.
Result<std::array<uint32_t, 3>> flat_grid(const Context& context, uint64_t groups);

// Makes earlier transfer, shader and host writes visible to later dispatches, or a
// dispatch's writes visible to later copies, shaders and host reads.
void memory_barrier(const VulkanFunctions& vk, VkCommandBuffer commands, VkPipelineStageFlags source_stages,
                    VkAccessFlags source_access, VkPipelineStageFlags target_stages, VkAccessFlags target_access);

}  // namespace ember::gpu
