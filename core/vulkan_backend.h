// The Vulkan backend: runs fused `linear` nodes (x·Wᵀ + b, act; x f32, W f32, f16, q8_0
// or q4_0 as stored) on one VulkanDevice, and the cheap ops around them (add, swiglu,
// reshape, rms_norm, rope; f32, no broadcasting) and cached attention (f32 or f16 KV
// cache, which then lives on the device) where their data is already on the device: when
// an input's only current copy is there, or, inside a batch, when an earlier node of the
// batch makes it. So a chain of offloaded layers stays on the device, and these ops
// never pull CPU data across. Embedding nodes (row gathers) run here over a table the
// device holds (the last hidden rows, whose logits are wanted) or over an offloaded
// embedding table (VulkanRouting::tables), so a decoded token is one submission.
//
// Where bytes live: an input or output buffer gets a device home (a VulkanMirror) the
// first time a node here uses it. Weights keep theirs, so they are uploaded once and stay
// resident; an activation is uploaded only while its device copy is stale, and a result
// stays on the device (Buffer residency `device`) until a CPU node reads it.
//
// Batches: the executor hands over runs of consecutive nodes this backend takes (up to
// kMaxBatch), which become one recording, submitted in pieces as it is recorded, and one
// wait; a node's input made by an earlier node of the batch is read on the device without
// a round trip. The nodes are recorded as the executor gathers them (BatchFeed), so the
// device runs a token's first nodes while the host walks the graph for the rest.
//
// Faults: a node or batch that hits one returns ErrorCode::unsupported, so the executor
// reruns it (each node of the batch) on the CPU with the same inputs, and each kind is
// logged once per backend as a warning. Out of device memory: the allocator's spare
// blocks are freed and the batch retried once first. A pipeline or shader that cannot be
// created: that batch runs on the CPU. A lost device: this batch and every later node
// run on the CPU. (A real loss also loses results
// that only the device held, so the node reading one fails with the download's error
// and the next forward pass runs on the CPU from the start.)
#pragma once

#include <chrono>

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/rope_angle_cache.h"
#include "core/vulkan_device.h"
#include "ember/backend.h"

namespace ember {

struct VulkanRouting {
  uint64_t min_flops = 0;         // 2 · rows · k · n below this: the CPU
  uint64_t min_weight_bytes = 0;  // W smaller than this: the CPU
  // Only linear nodes whose weight lives in one of these buffers run here (a model's
  // offloaded layers); unset: any weight.
  std::optional<std::unordered_set<const Buffer*>> weights = std::nullopt;
  // Embedding nodes over a table the device does not hold yet run here only if it lives
  // in one of these buffers (the token and position embeddings, when the first layer is
  // offloaded); unset: any table. Rows of a table the device holds always may.
  std::optional<std::unordered_set<const Buffer*>> tables = std::nullopt;
};

class VulkanBackend final : public Backend {
 public:
  VulkanBackend(std::shared_ptr<VulkanDevice> device, VulkanRouting routing)
      : device_(std::move(device)), routing_(std::move(routing)) {}

  std::string_view name() const override { return "vulkan"; }
  bool supports(const Node& node, std::span<const Tensor> inputs) const override;
  bool joins_batch(const Node& node, std::span<const Tensor> inputs, std::span<const bool> from_batch) const override;
  Status run(const Node& node, std::span<const Tensor> inputs, const Tensor& output) override;
  // Consecutive linear nodes are recorded into one command buffer and submitted once.
  size_t max_batch() const override { return kMaxBatch; }
  Status run_batch(std::span<const BatchItem> items) override;
  // Records the nodes as the executor gathers them, and submits the recording in pieces.
  Status run_fed_batch(BatchFeed& feed) override;
  // From the device's timestamps around each submission (zero where it has none).
  std::chrono::nanoseconds last_device_time() const override { return last_device_time_; }
  // With set_time_each_node(true), from a timestamp after every dispatch.
  std::span<const std::chrono::nanoseconds> last_item_device_times() const override { return last_item_device_times_; }
  std::chrono::nanoseconds last_preparation_time() const override { return last_preparation_time_; }
  // Times each node's dispatches apart (for per-op profiles): a timestamp after every
  // dispatch, which may keep the device from overlapping neighbouring ones.
  void set_time_each_node(bool on) { time_each_node_ = on; }
  // Dispatches the last batch recorded (what a fusion saves shows here).
  size_t last_batch_dispatches() const { return last_batch_dispatches_; }

  // Enough for a whole token of a 0.5 B Llama (8 layers of 17 nodes) in one submission.
  // A node takes at most 2 descriptor sets (a block linear: x's rounding and the product;
  // attention: the cache store and the passes), so a batch needs at most 512 of
  // VulkanDevice::kDescriptorSets.
  static constexpr size_t kMaxBatch = 256;

 private:
  std::chrono::nanoseconds last_device_time_{0};
  std::chrono::nanoseconds last_preparation_time_{0};
  std::vector<std::chrono::nanoseconds> last_item_device_times_;
  size_t last_batch_dispatches_ = 0;
  bool time_each_node_ = false;
  // The device copy of `tensor`'s buffer, attached first if it has none here, and made
  // current when `needs_current` (inputs; an output is overwritten whole). A q8_0 or q4_0
  // tensor that fills its buffer (a weight, an embedding table) is attached split
  // (gpu/block_layout.h): the shaders then read each block's codes as aligned loads.
  Result<gpu::DeviceBuffer*> device_side(const Tensor& tensor, bool needs_current);
  // How the device holds `tensor`'s blocks, once device_side() has attached it.
  static gpu::BlockLayout block_layout(const Tensor& tensor);
  // supports() and joins_batch(): from_batch empty outside a batch.
  bool takes(const Node& node, std::span<const Tensor> inputs, std::span<const bool> from_batch) const;
  // `any_size`: the routing thresholds do not apply (the input is on the device already).
  bool supports_linear(const Node& node, std::span<const Tensor> inputs, bool any_size) const;
  // An embedding (row gather) over a table of f32, f16, q8_0 or q4_0 rows, with i32 ids
  // on the host (checked there before the gather is recorded).
  bool takes_embedding(const Node& node, std::span<const Tensor> inputs, std::span<const bool> from_batch) const;
  // Whether a node other than linear has a kernel here for these inputs.
  bool row_op_fits(const Node& node, std::span<const Tensor> inputs) const;
  // Which inputs of such an op are activations (where the data is), not weights or ids.
  static std::span<const size_t> activation_inputs(Op op);
  // The tensor's only current copy is on this device.
  bool on_this_device(const Tensor& tensor) const;
  // Records the feed's items into one gpu::CommandBatch as they are gathered, and runs it;
  // outputs are marked device-written only once all of them have run.
  Status run_nodes(BatchFeed& feed);
  // `next` is an rms_norm of `add`'s whole output: run_nodes records the two as one dispatch.
  static bool norms_the_sum(const BatchItem& add, const BatchItem& next);
  // cached_attention with f32 or f16 caches, head size even and at most 256, and scores
  // scratch (segments too short to run tiled) of at most kMaxAttentionScratchFloats.
  bool attention_fits(const Node& node, std::span<const Tensor> inputs) const;
  static constexpr uint64_t kMaxAttentionScratchFloats = uint64_t{64} << 20;
  // Segment s of a cached_attention node, whose query rows start at first_row.
  static gpu::AttentionShape attention_segment(const Node& node, std::span<const Tensor> inputs, size_t s,
                                               uint32_t first_row);

  // What a batch being recorded shares between its nodes, alive until it has run.
  struct AngleKey {
    const Buffer* positions;  // null: position_offset + token
    int64_t tokens, rotary_dims;
    float base;
    int64_t position_offset;
    float position_scale;
    friend bool operator==(const AngleKey&, const AngleKey&) = default;
  };
  // A buffer a batch makes for itself (rope angles, attention scratch, token ids,
  // read-back copies), and the memory it is in.
  struct BatchBuffer {
    gpu::MemoryUse use;
    gpu::DeviceBuffer buffer;
  };
  struct Recording {
    explicit Recording(std::vector<BatchBuffer>& spares) : spares(spares) {}
    Recording(const Recording&) = delete;
    Recording& operator=(const Recording&) = delete;
    // Hands the batch's buffers to the next batch (spare_buffers_).
    ~Recording();
    // Outputs of the nodes recorded before: their device copies will be current when the
    // batch runs, whatever the host holds now.
    std::unordered_set<const Buffer*> made_here;
    // KV caches the batch writes: inputs whose device copy becomes the current one.
    std::vector<Buffer*> written_caches;
    std::deque<BatchBuffer> buffers;
    std::vector<BatchBuffer>& spares;
    std::vector<std::pair<AngleKey, const gpu::DeviceBuffer*>> angle_tables;
    const gpu::DeviceBuffer* attention_scratch = nullptr;
  };
  // Where the dispatch recorded next, which writes `output` (on the device,
  // `device_output`), also leaves it rounded to q8_0: when `reader` (the item after) is a
  // one-row linear over block weights that reads it (q after its norm, down after
  // swiglu, the output projection after attention), whose GEMV then records no rounding
  // pass (gpu::FusedLinear::prepare_rounded_x); otherwise nowhere.
  Result<std::optional<gpu::RoundedX>> rounding_for(gpu::CommandBatch& batch, const BatchItem* reader,
                                                    const Tensor& output, const gpu::DeviceBuffer& device_output);
  // An input's device copy, uploaded first unless an earlier node of the batch makes it.
  Result<gpu::DeviceBuffer*> recorded_input(Recording& recording, const Tensor& tensor);
  // At least `bytes` of `use` memory, kept until the batch is done: a spare that fits,
  // or a new buffer.
  Result<gpu::DeviceBuffer*> batch_buffer(Recording& recording, uint64_t bytes, gpu::MemoryUse use);
  // `bytes` of host-visible memory that the device reads or writes directly, kept until
  // the batch is done; `what` names it in the error where the memory is not mapped.
  Result<gpu::DeviceBuffer*> host_visible(Recording& recording, uint64_t bytes, std::string_view what);
  // A layer's q and k ropes that the attention recorded right after them turns itself
  // (a decoded token): their unturned inputs, the angles and their own outputs.
  struct FoldedRope {
    gpu::DeviceBuffer* q = nullptr;
    gpu::DeviceBuffer* keys = nullptr;
    gpu::AttentionRope rope;
  };
  // Whether `attention`, the item after a rope pair (turns_alongside), reads the pair's
  // outputs as its q and keys and turns them itself (gpu::DeviceAttention::turns_inside).
  bool turns_in_attention(const BatchItem& q_rope, const BatchItem& k_rope, const BatchItem& attention) const;
  Result<FoldedRope> fold_ropes(Recording& recording, const BatchItem& q_rope, const BatchItem& k_rope);
  // `reader`: the item recorded after this one (rounding_for). With `folded`, the ropes
  // before it that it turns itself.
  Status record_attention(gpu::CommandBatch& batch, Recording& recording, const Node& node,
                          std::span<const Tensor> inputs, const Tensor& output, gpu::DeviceBuffer& out,
                          const BatchItem* reader, const std::optional<FoldedRope>& folded);
  // The (cos, sin) table of a rope node's angles, made once per batch for all nodes that
  // turn by the same angles.
  Result<const gpu::DeviceBuffer*> angle_table(Recording& recording, const Node& node, std::span<const Tensor> inputs);
  // With `alongside` (a rope turns_alongside this one), that node's tensor too, in the
  // same dispatch.
  Status record_rope(gpu::CommandBatch& batch, Recording& recording, const Node& node, std::span<const Tensor> inputs,
                     gpu::DeviceBuffer& y, const BatchItem* alongside = nullptr);
  // `next` is a rope by the same angles over another input (a layer's k after its q).
  static bool turns_alongside(const BatchItem& rope, const BatchItem& next);
  Status record_embedding(gpu::CommandBatch& batch, Recording& recording, std::span<const Tensor> inputs,
                          gpu::DeviceBuffer& y);

  enum class Fault { pipeline, out_of_memory, device_lost };
  std::optional<Fault> fault_of(const Status& status) const;
  void warn_once(Fault fault, const Status& status);

  std::shared_ptr<VulkanDevice> device_;
  VulkanRouting routing_;
  // The buffers earlier batches made, for later ones: a decoded token then gets the same
  // ones as the token before, with no allocation, and binds them through the descriptor
  // sets kept from then (gpu::DescriptorSets). Dropped before an out-of-memory retry.
  std::vector<BatchBuffer> spare_buffers_;
  static constexpr size_t kMostSpareBuffers = 16;
  RopeAngleCache rope_angles_;
  std::array<std::atomic<bool>, 3> warned_{};
};

}  // namespace ember
