#include "core/vulkan_backend.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include <fmt/format.h>

#include "core/embedding_ids.h"
#include "core/log.h"
#include "core/rope_params.h"

namespace ember {
namespace {

std::optional<gpu::WeightType> weight_type(DType type) {
  switch (type) {
    case DType::f32: return gpu::WeightType::f32;
    case DType::f16: return gpu::WeightType::f16;
    case DType::q8_0: return gpu::WeightType::q8_0;
    case DType::q4_0: return gpu::WeightType::q4_0;
    default: return std::nullopt;
  }
}

std::optional<gpu::Activation> gpu_activation(Activation act) {
  switch (act) {
    case Activation::none: return gpu::Activation::none;
    case Activation::relu: return gpu::Activation::relu;
    case Activation::gelu_tanh: return gpu::Activation::gelu_tanh;
    case Activation::silu: return gpu::Activation::silu;
    case Activation::gelu_erf: return std::nullopt;
  }
  return std::nullopt;
}

// The item recorded after items[index], if any.
const BatchItem* item_after(std::span<const BatchItem> items, size_t index) {
  return index + 1 < items.size() ? &items[index + 1] : nullptr;
}

// The shaders bind whole buffers from their first byte and read them densely.
bool bindable(const Tensor& tensor) { return tensor.is_contiguous() && tensor.byte_offset() == 0; }

}  // namespace

bool VulkanBackend::supports(const Node& node, std::span<const Tensor> inputs) const {
  return takes(node, inputs, {});
}

bool VulkanBackend::joins_batch(const Node& node, std::span<const Tensor> inputs, std::span<const bool> from_batch) const {
  return takes(node, inputs, from_batch);
}

bool VulkanBackend::takes(const Node& node, std::span<const Tensor> inputs, std::span<const bool> from_batch) const {
  if (device_->context().device_lost()) return false;
  if (node.op == Op::embedding) return takes_embedding(node, inputs, from_batch);
  if (node.op == Op::linear) {
    // The size thresholds price a dispatch with a round trip of its own (x up, y down);
    // a linear whose input the device already holds, or this batch makes, costs only its
    // dispatch there, while the CPU would first need that input brought back.
    const bool input_here = (!from_batch.empty() && from_batch[0]) || on_this_device(inputs[0]);
    return supports_linear(node, inputs, /*any_size=*/input_here);
  }
  // Any other op goes where its data already is: an input whose only current copy is on
  // this device, or that an earlier node of the batch makes.
  if (!row_op_fits(node, inputs)) return false;
  const std::span<const size_t> activations = activation_inputs(node.op);
  return std::any_of(activations.begin(), activations.end(), [&](size_t i) {
    return (i < from_batch.size() && from_batch[i]) || on_this_device(inputs[i]);
  });
}

bool VulkanBackend::supports_linear(const Node& node, std::span<const Tensor> inputs, bool any_size) const {
  if (inputs.size() != 3 || !gpu_activation(node.params.activation)) return false;
  const Tensor &x = inputs[0], &weight = inputs[1], &bias = inputs[2];
  if (x.dtype() != DType::f32 || !bindable(x) || weight.rank() != 2 || !bindable(weight)) return false;
  if (bias.defined() && (bias.dtype() != DType::f32 || !bindable(bias))) return false;
  const auto type = weight_type(weight.dtype());
  if (!type) return false;
  if (routing_.weights && !routing_.weights->contains(weight.buffer().get())) return false;
  const auto n = static_cast<uint64_t>(weight.dim(0)), k = static_cast<uint64_t>(weight.dim(1));
  if (n == 0 || k == 0) return false;
  if (gpu::is_block(*type) && k % 32 != 0) return false;
  const uint64_t rows = static_cast<uint64_t>(x.elements()) / k;
  // The shaders index with 32-bit integers.
  if (rows == 0 || rows * k > UINT32_MAX || rows * n > UINT32_MAX || weight.payload_bytes() > UINT32_MAX) return false;
  return any_size || (2 * rows * k * n >= routing_.min_flops && weight.payload_bytes() >= routing_.min_weight_bytes);
}

bool VulkanBackend::takes_embedding(const Node& node, std::span<const Tensor> inputs,
                                    std::span<const bool> from_batch) const {
  if (inputs.size() != 2 || node.dtype != DType::f32) return false;
  const Tensor &table = inputs[0], &ids = inputs[1];
  const auto made_here = [&](size_t i) { return (i < from_batch.size() && from_batch[i]) || on_this_device(inputs[i]); };
  if (ids.dtype() != DType::i32 || !bindable(ids) || made_here(1)) return false;
  const auto type = weight_type(table.dtype());
  if (!type || table.rank() != 2 || !bindable(table) || table.dim(0) == 0) return false;
  if ((gpu::is_block(*type) && table.dim(1) % 32 != 0) || static_cast<uint64_t>(node.shape.elements()) > UINT32_MAX ||
      table.payload_bytes() > UINT32_MAX)
    return false;
  return made_here(0) || !routing_.tables || routing_.tables->contains(table.buffer().get());
}

std::span<const size_t> VulkanBackend::activation_inputs(Op op) {
  static constexpr size_t kFirstThree[] = {0, 1, 2};
  switch (op) {
    case Op::add: case Op::swiglu: return std::span(kFirstThree, 2);
    case Op::reshape: case Op::rms_norm: case Op::layer_norm: case Op::rope: return std::span(kFirstThree, 1);
    case Op::cached_attention: return kFirstThree;
    default: return {};
  }
}

bool VulkanBackend::row_op_fits(const Node& node, std::span<const Tensor> inputs) const {
  const auto dense = [](const Tensor& tensor) {
    return tensor.defined() && tensor.dtype() == DType::f32 && bindable(tensor) && tensor.elements() > 0 &&
           tensor.elements() <= UINT32_MAX;
  };
  if (node.dtype != DType::f32) return false;
  switch (node.op) {
    case Op::add:
    case Op::swiglu:  // no broadcasting here
      return inputs.size() == 2 && dense(inputs[0]) && dense(inputs[1]) && inputs[0].shape() == node.shape &&
             inputs[1].shape() == node.shape;
    case Op::reshape: return inputs.size() == 1 && dense(inputs[0]);
    case Op::rms_norm: {
      if (inputs.size() != 2 || !dense(inputs[0]) || !dense(inputs[1]) || inputs[0].shape() != node.shape) return false;
      const int64_t cols = node.shape[node.shape.rank() - 1];
      return inputs[1].rank() == 1 && inputs[1].dim(0) == cols;
    }
    case Op::layer_norm: {
      if (inputs.size() != 3 || !dense(inputs[0]) || !dense(inputs[1]) || !dense(inputs[2]) ||
          inputs[0].shape() != node.shape)
        return false;
      const int64_t cols = node.shape[node.shape.rank() - 1];
      return inputs[1].rank() == 1 && inputs[1].dim(0) == cols && inputs[2].rank() == 1 && inputs[2].dim(0) == cols;
    }
    case Op::rope: {
      if (inputs.empty() || !dense(inputs[0]) || inputs[0].shape() != node.shape || node.shape.rank() != 3) return false;
      const int64_t rotary = node.params.rotary_dims;
      if (rotary < 0 || rotary % 2 != 0 || rotary > node.shape[2]) return false;
      if (inputs.size() < 2 || !inputs[1].defined()) return true;
      return inputs[1].dtype() == DType::i32 && inputs[1].is_contiguous() && inputs[1].elements() == node.shape[0];
    }
    case Op::cached_attention: return attention_fits(node, inputs);
    default: return false;
  }
}

gpu::AttentionShape VulkanBackend::attention_segment(const Node& node, std::span<const Tensor> inputs, size_t s,
                                                     uint32_t first_row) {
  const AttentionSegment& segment = node.params.segments[s];
  const Tensor& k_cache = inputs[3 + 2 * s];
  return {.first_row = first_row,
          .tokens = static_cast<uint32_t>(segment.tokens),
          .position = static_cast<uint32_t>(segment.position),
          .q_heads = static_cast<uint32_t>(node.shape[1]),
          .kv_heads = static_cast<uint32_t>(inputs[1].dim(1)),
          .head_dim = static_cast<uint32_t>(node.shape[2]),
          .cache_rows = static_cast<uint32_t>(k_cache.dim(0)),
          .cache_type = k_cache.dtype() == DType::f16 ? gpu::CacheType::f16 : gpu::CacheType::f32,
          .scale = node.params.factor};
}

bool VulkanBackend::attention_fits(const Node& node, std::span<const Tensor> inputs) const {
  const std::vector<AttentionSegment>& segments = node.params.segments;
  if (inputs.size() != 3 + 2 * segments.size() || segments.empty() || node.shape.rank() != 3) return false;
  for (size_t i = 0; i < 3; ++i)
    if (inputs[i].dtype() != DType::f32 || !bindable(inputs[i]) || inputs[i].rank() != 3) return false;
  const int64_t q_heads = node.shape[1], head_dim = node.shape[2], kv_heads = inputs[1].dim(1);
  if (head_dim % 2 != 0 || head_dim > gpu::DeviceAttention::kMaxHeadDim || kv_heads == 0 || q_heads % kv_heads != 0)
    return false;
  for (size_t s = 0; s < segments.size(); ++s) {
    const Tensor &k_cache = inputs[3 + 2 * s], &v_cache = inputs[4 + 2 * s];
    for (const Tensor* cache : {&k_cache, &v_cache})
      if ((cache->dtype() != DType::f32 && cache->dtype() != DType::f16) || !bindable(*cache) || cache->rank() != 3 ||
          cache->dim(1) != kv_heads || cache->dim(2) != head_dim || cache->payload_bytes() > UINT32_MAX)
        return false;
    if (segments[s].tokens <= 0 || segments[s].position < 0 || k_cache.dim(0) < segments[s].position + segments[s].tokens ||
        v_cache.dim(0) < k_cache.dim(0))
      return false;
    // The scores' scratch of a segment too short to run tiled: one row of its keys per
    // query row and head.
    const gpu::AttentionShape shape = attention_segment(node, inputs, s, 0);
    if (gpu::DeviceAttention::scratch_floats(shape, device_->context().capabilities()) > kMaxAttentionScratchFloats)
      return false;
  }
  return static_cast<uint64_t>(node.shape.elements()) <= UINT32_MAX;
}

bool VulkanBackend::on_this_device(const Tensor& tensor) const {
  const Buffer& buffer = *tensor.buffer();
  const auto* mirror = dynamic_cast<const VulkanMirror*>(buffer.device());
  return mirror != nullptr && mirror->owner() == device_.get() && buffer.residency() == Residency::device;
}

Result<gpu::DeviceBuffer*> VulkanBackend::device_side(const Tensor& tensor, bool needs_current) {
  Buffer& buffer = *tensor.buffer();
  auto* mirror = dynamic_cast<VulkanMirror*>(buffer.device());
  if (mirror == nullptr || mirror->owner() != device_.get()) {
    // Another device's copy may be the only current one: bring it home before replacing it.
    if (buffer.device() != nullptr) {
      auto host = buffer.host_read();
      if (!host) return host.status();
    }
    const auto type = weight_type(tensor.dtype());
    const bool split = type && gpu::is_block(*type) && bindable(tensor) &&
                       tensor.payload_bytes() == buffer.bytes();
    EMBER_RETURN_IF_ERROR(device_->attach(buffer, split ? type : std::nullopt));
    mirror = static_cast<VulkanMirror*>(buffer.device());
  }
  if (needs_current) EMBER_RETURN_IF_ERROR(buffer.ensure_device_current());
  return &mirror->device_buffer();
}

gpu::BlockLayout VulkanBackend::block_layout(const Tensor& tensor) {
  const auto* mirror = dynamic_cast<const VulkanMirror*>(tensor.buffer()->device());
  return mirror != nullptr ? mirror->block_layout() : gpu::BlockLayout::file;
}

Status VulkanBackend::run(const Node& node, std::span<const Tensor> inputs, const Tensor& output) {
  const BatchItem item{&node, inputs, output};
  return run_batch(std::span(&item, 1));
}

namespace {

// A batch gathered whole before it is handed over.
class GatheredFeed final : public BatchFeed {
 public:
  explicit GatheredFeed(std::span<const BatchItem> items) : items_(items) {}
  std::span<const BatchItem> items() const override { return items_; }
  bool gather() override { return false; }

 private:
  std::span<const BatchItem> items_;
};

}  // namespace

Status VulkanBackend::run_batch(std::span<const BatchItem> items) {
  GatheredFeed feed(items);
  return run_fed_batch(feed);
}

Status VulkanBackend::run_fed_batch(BatchFeed& feed) {
  Status status = run_nodes(feed);
  if (status.code() == ErrorCode::out_of_memory && !device_->context().device_lost()) {
    spare_buffers_.clear();
    device_->allocator().trim();
    status = run_nodes(feed);
  }
  if (status.ok()) return status;
  const auto fault = fault_of(status);
  if (!fault) return status;
  warn_once(*fault, status);
  return unsupported(status.message());
}

std::optional<VulkanBackend::Fault> VulkanBackend::fault_of(const Status& status) const {
  if (device_->context().device_lost()) return Fault::device_lost;
  if (status.code() == ErrorCode::out_of_memory) return Fault::out_of_memory;
  // Pipeline and shader failures (gpu/pipeline_cache.h), and shaders the device cannot run.
  if (status.code() == ErrorCode::unsupported) return Fault::pipeline;
  return std::nullopt;
}

void VulkanBackend::warn_once(Fault fault, const Status& status) {
  if (warned_[static_cast<size_t>(fault)].exchange(true)) return;
  switch (fault) {
    case Fault::pipeline:
      EMBER_LOG(warn, "Vulkan: {}; nodes needing that shader run on the CPU", status.message());
      break;
    case Fault::out_of_memory:
      EMBER_LOG(warn, "Vulkan: out of device memory after freeing spare blocks ({}); such nodes run on the CPU",
                status.message());
      break;
    case Fault::device_lost:
      EMBER_LOG(warn, "Vulkan: the device was lost ({}); the CPU runs every node from now on", status.message());
      break;
  }
}

Status VulkanBackend::run_nodes(BatchFeed& feed) {
  const auto start = std::chrono::steady_clock::now();
  gpu::CommandBatch batch(device_->context(), device_->descriptor_sets());
  Recording recording(spare_buffers_);
  const auto input = [&](const Tensor& tensor) { return recorded_input(recording, tensor); };
  std::vector<size_t> first_dispatch;  // of each item, then the end
  std::optional<FoldedRope> folded_rope;  // for the attention item next
  // Records items[index], and the items after it that its dispatch covers too (index
  // then moves past them).
  const auto record_item = [&](std::span<const BatchItem> items, size_t& index) -> Status {
    const BatchItem& item = items[index];
    first_dispatch.push_back(batch.dispatches());
    const Node& node = *item.node;
    const std::span<const Tensor> inputs = item.inputs;
    auto y = device_side(item.output, false);
    if (!y) return y.status();
    const auto elements = static_cast<uint32_t>(item.output.elements());
    switch (node.op) {
      case Op::linear: {
        const Tensor &x = inputs[0], &weight = inputs[1], &bias = inputs[2];
        gpu::LinearArgs args;
        auto x_device = input(x);
        if (!x_device) return x_device.status();
        auto weight_device = input(weight);
        if (!weight_device) return weight_device.status();
        if (bias.defined()) {
          auto bias_device = input(bias);
          if (!bias_device) return bias_device.status();
          args.bias = bias_device.value();
        }
        args.x = x_device.value();
        args.k = static_cast<uint32_t>(weight.dim(1));
        args.rows = static_cast<uint32_t>(x.elements() / weight.dim(1));
        args.weights = weight_device.value();
        args.weight_type = *weight_type(weight.dtype());
        args.weight_layout = block_layout(weight);
        args.n = static_cast<uint32_t>(weight.dim(0));
        args.activation = *gpu_activation(node.params.activation);
        args.y = y.value();
        EMBER_RETURN_IF_ERROR(from_gpu(device_->linear().record(batch, args)));
        break;
      }
      case Op::add:
      case Op::swiglu: {
        auto a = input(inputs[0]);
        if (!a) return a.status();
        auto b = input(inputs[1]);
        if (!b) return b.status();
        if (node.op == Op::add && index + 1 < items.size() && norms_the_sum(item, items[index + 1])) {
          // The residual add and the norm of its sum that follows it, as one dispatch; the
          // norm's node records nothing of its own.
          const BatchItem& norm = items[++index];
          auto weight = input(norm.inputs[1]);
          if (!weight) return weight.status();
          auto normed = device_side(norm.output, false);
          if (!normed) return normed.status();
          const auto cols = static_cast<uint32_t>(norm.node->shape[norm.node->shape.rank() - 1]);
          auto rounded = rounding_for(batch, item_after(items, index), norm.output, *normed.value());
          if (!rounded) return rounded.status();
          EMBER_RETURN_IF_ERROR(from_gpu(device_->row_ops().record_rms_norm(
              batch, *a.value(), *weight.value(), *normed.value(), elements / cols, cols, norm.node->params.eps,
              gpu::RowOps::ResidualAdd{.delta = b.value(), .sum = y.value()}, rounded.value())));
          first_dispatch.push_back(batch.dispatches());
          recording.made_here.insert(norm.output.buffer().get());
          break;
        }
        const auto op = node.op == Op::add ? gpu::ElementwiseOp::add : gpu::ElementwiseOp::swiglu;
        auto rounded = rounding_for(batch, item_after(items, index), item.output, *y.value());
        if (!rounded) return rounded.status();
        EMBER_RETURN_IF_ERROR(from_gpu(
            device_->row_ops().record_elementwise(batch, op, *a.value(), b.value(), *y.value(), elements, rounded.value())));
        break;
      }
      case Op::reshape: {
        auto a = input(inputs[0]);
        if (!a) return a.status();
        EMBER_RETURN_IF_ERROR(from_gpu(
            device_->row_ops().record_elementwise(batch, gpu::ElementwiseOp::copy, *a.value(), nullptr, *y.value(), elements)));
        break;
      }
      case Op::rms_norm: {
        auto x = input(inputs[0]);
        if (!x) return x.status();
        auto weight = input(inputs[1]);
        if (!weight) return weight.status();
        const auto cols = static_cast<uint32_t>(node.shape[node.shape.rank() - 1]);
        auto rounded = rounding_for(batch, item_after(items, index), item.output, *y.value());
        if (!rounded) return rounded.status();
        EMBER_RETURN_IF_ERROR(from_gpu(device_->row_ops().record_rms_norm(batch, *x.value(), *weight.value(), *y.value(),
                                                                          elements / cols, cols, node.params.eps,
                                                                          std::nullopt, rounded.value())));
        break;
      }
      case Op::layer_norm: {
        auto x = input(inputs[0]);
        if (!x) return x.status();
        auto weight = input(inputs[1]);
        if (!weight) return weight.status();
        auto bias = input(inputs[2]);
        if (!bias) return bias.status();
        const auto cols = static_cast<uint32_t>(node.shape[node.shape.rank() - 1]);
        EMBER_RETURN_IF_ERROR(from_gpu(device_->row_ops().record_layer_norm(
            batch, *x.value(), *weight.value(), *bias.value(), *y.value(), elements / cols, cols, node.params.eps)));
        break;
      }
      case Op::rope: {
        // A layer's q and then k rope, by the same angles: one dispatch for both, or none
        // where the attention right after them turns both itself.
        const BatchItem* alongside =
            index + 1 < items.size() && turns_alongside(item, items[index + 1]) ? &items[index + 1] : nullptr;
        if (alongside != nullptr && index + 2 < items.size() && turns_in_attention(item, *alongside, items[index + 2])) {
          auto folded = fold_ropes(recording, item, *alongside);
          if (!folded) return folded.status();
          folded_rope = folded.value();
        } else {
          EMBER_RETURN_IF_ERROR(record_rope(batch, recording, node, inputs, *y.value(), alongside));
        }
        if (alongside != nullptr) {
          ++index;
          first_dispatch.push_back(batch.dispatches());
          recording.made_here.insert(alongside->output.buffer().get());
        }
        break;
      }
      case Op::embedding: EMBER_RETURN_IF_ERROR(record_embedding(batch, recording, inputs, *y.value())); break;
      case Op::cached_attention:
        EMBER_RETURN_IF_ERROR(record_attention(batch, recording, node, inputs, item.output, *y.value(),
                                               item_after(items, index), folded_rope));
        folded_rope.reset();
        break;
      default: return internal_error(fmt::format("the Vulkan backend has no kernel for {}", op_name(node.op)));
    }
    recording.made_here.insert(item.output.buffer().get());
    return {};
  };
  // Graph outputs come back to the host in the same submission.
  std::vector<std::pair<Buffer*, const gpu::DeviceBuffer*>> read_back;
  const auto copy_outputs_back = [&]() -> Status {
    for (const BatchItem& item : feed.items()) {
      if (!item.graph_output) continue;
      Buffer& buffer = *item.output.buffer();
      auto device = device_side(item.output, false);
      if (!device) return device.status();
      auto host_copy = host_visible(recording, buffer.bytes(), "a read-back buffer");
      if (!host_copy) return host_copy.status();
      batch.copy_to_host(*device.value(), *host_copy.value(), buffer.bytes());
      read_back.emplace_back(&buffer, host_copy.value());
    }
    return {};
  };
  // The batch is recorded as the executor gathers it, and the recording goes to the device
  // in pieces (gpu::CommandBatch::run), so the device starts on the first nodes while the
  // host is still walking the graph. An item is recorded once the items it may fuse with
  // are gathered: a q and k rope pair and the attention after them.
  constexpr size_t kItemsLookedAt = 3;
  size_t next_item = 0;
  bool outputs_copied = false;
  Status recorded;
  const auto record_more = [&]() {
    if (!recorded.ok()) return false;
    while (feed.items().size() < next_item + kItemsLookedAt && feed.gather()) {
    }
    const std::span<const BatchItem> items = feed.items();
    if (next_item < items.size()) {
      recorded = record_item(items, next_item);
      ++next_item;
      return recorded.ok();
    }
    if (!outputs_copied) recorded = copy_outputs_back();
    outputs_copied = true;
    return false;
  };
  const std::chrono::nanoseconds before_recording = std::chrono::steady_clock::now() - start;
  last_device_time_ = std::chrono::nanoseconds(0);
  last_item_device_times_.clear();
  const auto as_nanoseconds = [](double seconds) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(seconds));
  };
  if (device_->context().capabilities().timestamp_valid_bits == 0) {
    const Status ran = from_gpu(batch.run(record_more));
    EMBER_RETURN_IF_ERROR(recorded);
    EMBER_RETURN_IF_ERROR(ran);
  } else if (time_each_node_) {
    // Timing each dispatch needs their count before the recording starts.
    while (record_more()) {
    }
    EMBER_RETURN_IF_ERROR(recorded);
    first_dispatch.push_back(batch.dispatches());
    auto each = batch.run_timed_each();
    if (!each) return from_gpu(each.status());
    for (size_t i = 0; i + 1 < first_dispatch.size(); ++i) {
      double seconds = 0;
      for (size_t d = first_dispatch[i]; d < first_dispatch[i + 1]; ++d) seconds += each.value()[d];
      last_item_device_times_.push_back(as_nanoseconds(seconds));
      last_device_time_ += last_item_device_times_.back();
    }
  } else {
    auto busy = batch.run_timed(record_more);
    EMBER_RETURN_IF_ERROR(recorded);
    if (!busy) return from_gpu(busy.status());
    last_device_time_ = as_nanoseconds(busy.value());
  }
  last_batch_dispatches_ = batch.dispatches();
  last_preparation_time_ = before_recording + batch.recording_before_submission();
  for (const BatchItem& item : feed.items()) item.output.buffer()->mark_device_written();
  for (const auto& [buffer, host_copy] : read_back) buffer->take_device_write(host_copy->mapped());
  for (Buffer* cache : recording.written_caches) cache->mark_device_written();
  return {};
}

namespace {

// Whether two tensors are the same bytes: one node's output read as the other's input.
bool same_view(const Tensor& a, const Tensor& b) {
  return a.buffer() == b.buffer() && a.byte_offset() == b.byte_offset() && a.elements() == b.elements();
}

}  // namespace

bool VulkanBackend::norms_the_sum(const BatchItem& add, const BatchItem& next) {
  return next.node->op == Op::rms_norm && same_view(next.inputs[0], add.output);
}

Result<std::optional<gpu::RoundedX>> VulkanBackend::rounding_for(gpu::CommandBatch& batch, const BatchItem* reader,
                                                                   const Tensor& output,
                                                                   const gpu::DeviceBuffer& device_output) {
  if (reader == nullptr || reader->node->op != Op::linear) return std::optional<gpu::RoundedX>{};
  const Tensor &x = reader->inputs[0], &weight = reader->inputs[1];
  const auto type = weight_type(weight.dtype());
  if (x.buffer() != output.buffer() || x.byte_offset() != output.byte_offset() || !type || weight.rank() != 2)
    return std::optional<gpu::RoundedX>{};
  const auto k = static_cast<uint32_t>(weight.dim(1));
  auto prepared = device_->linear().prepare_rounded_x(batch, device_output, static_cast<uint32_t>(x.elements() / k), k, *type);
  if (!prepared) return from_gpu(prepared.status());
  return prepared.value();
}

Result<gpu::DeviceBuffer*> VulkanBackend::recorded_input(Recording& recording, const Tensor& tensor) {
  return device_side(tensor, !recording.made_here.contains(tensor.buffer().get()));
}

VulkanBackend::Recording::~Recording() {
  for (BatchBuffer& made : buffers) spares.push_back(std::move(made));
  // The latest batch's are kept: the next one most likely needs the same.
  if (spares.size() > kMostSpareBuffers)
    spares.erase(spares.begin(), spares.begin() + static_cast<std::ptrdiff_t>(spares.size() - kMostSpareBuffers));
}

Result<gpu::DeviceBuffer*> VulkanBackend::batch_buffer(Recording& recording, uint64_t bytes, gpu::MemoryUse use) {
  // The smallest spare that holds `bytes` without wasting more than as much again.
  const auto fits = [&](const BatchBuffer& spare) {
    return spare.use == use && spare.buffer.bytes() >= bytes && spare.buffer.bytes() <= std::max<uint64_t>(2 * bytes, 4096);
  };
  auto best = recording.spares.end();
  for (auto spare = recording.spares.begin(); spare != recording.spares.end(); ++spare)
    if (fits(*spare) && (best == recording.spares.end() || spare->buffer.bytes() < best->buffer.bytes())) best = spare;
  if (best != recording.spares.end()) {
    recording.buffers.push_back(std::move(*best));
    recording.spares.erase(best);
    return &recording.buffers.back().buffer;
  }
  auto buffer = gpu::DeviceBuffer::create(device_->allocator(), bytes, use);
  if (!buffer) return from_gpu(buffer.status());
  return &recording.buffers.emplace_back(BatchBuffer{use, std::move(buffer.value())}).buffer;
}

Result<gpu::DeviceBuffer*> VulkanBackend::host_visible(Recording& recording, uint64_t bytes, std::string_view what) {
  auto buffer = batch_buffer(recording, bytes, gpu::MemoryUse::staging);
  if (!buffer) return buffer.status();
  if (buffer.value()->mapped() == nullptr) return internal_error(fmt::format("Vulkan: {} is not host-visible", what));
  return buffer.value();
}

Status VulkanBackend::record_attention(gpu::CommandBatch& batch, Recording& recording, const Node& node,
                                       std::span<const Tensor> inputs, const Tensor& output, gpu::DeviceBuffer& out,
                                       const BatchItem* reader, const std::optional<FoldedRope>& folded) {
  std::array<gpu::DeviceBuffer*, 3> fresh{};  // q, k_new, v_new
  for (size_t i = folded ? 2 : 0; i < fresh.size(); ++i) {
    auto device = recorded_input(recording, inputs[i]);
    if (!device) return device.status();
    fresh[i] = device.value();
  }
  std::optional<gpu::AttentionRope> rope;
  if (folded) {
    fresh[0] = folded->q;
    fresh[1] = folded->keys;
    rope = folded->rope;
  }
  const gpu::DeviceCapabilities& caps = device_->context().capabilities();
  uint64_t scratch_floats = 0;
  for (uint32_t first_row = 0, s = 0; s < node.params.segments.size(); ++s) {
    const gpu::AttentionShape shape = attention_segment(node, inputs, s, first_row);
    scratch_floats = std::max(scratch_floats, gpu::DeviceAttention::scratch_floats(shape, caps));
    first_row += shape.tokens;
  }
  // The attention dispatches of a batch run one after another, so they share one scratch.
  if (scratch_floats != 0 &&
      (recording.attention_scratch == nullptr || recording.attention_scratch->bytes() < 4 * scratch_floats)) {
    // Made a power of two: a decoded token's scores grow by a key each token, and a
    // scratch made to measure would be new each time (and so would its descriptor set).
    auto scratch = batch_buffer(recording, std::bit_ceil(4 * scratch_floats), gpu::MemoryUse::device);
    if (!scratch) return scratch.status();
    recording.attention_scratch = scratch.value();
  }
  uint32_t first_row = 0;
  for (size_t s = 0; s < node.params.segments.size(); ++s) {
    const Tensor &k_cache = inputs[3 + 2 * s], &v_cache = inputs[4 + 2 * s];
    auto k_device = recorded_input(recording, k_cache);
    if (!k_device) return k_device.status();
    auto v_device = recorded_input(recording, v_cache);
    if (!v_device) return v_device.status();
    const gpu::AttentionShape shape = attention_segment(node, inputs, s, first_row);
    // A decoded token's output, read next by its projection's GEMV, goes rounded too.
    std::optional<gpu::RoundedX> rounded;
    if (node.params.segments.size() == 1 && gpu::DeviceAttention::rounds_output(shape, caps)) {
      auto prepared = rounding_for(batch, reader, output, out);
      if (!prepared) return prepared.status();
      rounded = prepared.value();
    }
    const gpu::AttentionBuffers buffers{.q = fresh[0], .new_keys = fresh[1], .new_values = fresh[2],
                                        .key_cache = k_device.value(), .value_cache = v_device.value(), .out = &out,
                                        .scratch = recording.attention_scratch};
    EMBER_RETURN_IF_ERROR(from_gpu(device_->attention().record(batch, shape, buffers, rounded, rope)));
    recording.written_caches.push_back(k_cache.buffer().get());
    recording.written_caches.push_back(v_cache.buffer().get());
    first_row += shape.tokens;
  }
  return {};
}

// The ids stay on the host (takes_embedding), so they are checked there, with the CPU
// backend's message, before the shader trusts them.
Status VulkanBackend::record_embedding(gpu::CommandBatch& batch, Recording& recording, std::span<const Tensor> inputs,
                                       gpu::DeviceBuffer& y) {
  const Tensor &table = inputs[0], &ids = inputs[1];
  auto id_values = ids.read<int32_t>();
  if (!id_values) return id_values.status();
  EMBER_RETURN_IF_ERROR(check_embedding_ids(id_values.value(), ids.elements(), table.dim(0)));
  auto table_device = recorded_input(recording, table);
  if (!table_device) return table_device.status();
  // The ids go into host-visible memory the shader reads directly: a token's ids are a
  // fresh tensor each pass, which a device copy would cost an allocation and a transfer
  // of its own.
  const uint64_t id_bytes = static_cast<uint64_t>(std::max<int64_t>(ids.elements(), 1)) * sizeof(int32_t);
  auto ids_device = host_visible(recording, id_bytes, "the embedding's ids");
  if (!ids_device) return ids_device.status();
  std::memcpy(ids_device.value()->mapped(), id_values.value(), static_cast<size_t>(ids.elements()) * sizeof(int32_t));
  return from_gpu(device_->row_ops().record_embedding(
      batch, *table_device.value(), *weight_type(table.dtype()), block_layout(table), static_cast<uint32_t>(table.dim(0)),
      *ids_device.value(), y, static_cast<uint32_t>(ids.elements()), static_cast<uint32_t>(table.dim(1))));
}

Result<const gpu::DeviceBuffer*> VulkanBackend::angle_table(Recording& recording, const Node& node,
                                                             std::span<const Tensor> inputs) {
  const int64_t tokens = node.shape[0], pairs = node.params.rotary_dims / 2;
  const cpu::RopeParams params = rope_params(node.params);
  const Buffer* positions_buffer = inputs.size() > 1 && inputs[1].defined() ? inputs[1].buffer().get() : nullptr;
  // Every layer turns q and k by the same angles: the table is made once per batch, on
  // the host from the rows kept across passes (core/rope_angle_cache.h), into memory the
  // device reads directly.
  const AngleKey key{positions_buffer, tokens, params.rotary_dims, params.base, params.position_offset,
                     params.position_scale};
  for (const auto& [made_for, table] : recording.angle_tables)
    if (made_for == key) return table;
  const int32_t* positions = nullptr;
  if (positions_buffer != nullptr) {
    auto read = inputs[1].read<int32_t>();
    if (!read) return read.status();
    positions = read.value();
  }
  const uint64_t angle_bytes = static_cast<uint64_t>(std::max<int64_t>(tokens * pairs, 1)) * 2 * sizeof(float);
  auto table = host_visible(recording, angle_bytes, "the rope's angle table");
  if (!table) return table.status();
  rope_angles_.fill(tokens, positions, params, reinterpret_cast<float*>(table.value()->mapped()));
  recording.angle_tables.emplace_back(key, table.value());
  return table.value();
}

bool VulkanBackend::turns_in_attention(const BatchItem& q_rope, const BatchItem& k_rope,
                                       const BatchItem& attention) const {
  const Node& node = *attention.node;
  if (node.op != Op::cached_attention || node.params.segments.size() != 1 || attention.inputs.size() < 2) return false;
  if (!same_view(attention.inputs[0], q_rope.output) || !same_view(attention.inputs[1], k_rope.output)) return false;
  const gpu::AttentionShape shape = attention_segment(node, attention.inputs, 0, 0);
  const int64_t pairs = q_rope.node->params.rotary_dims / 2;
  return pairs > 0 && 2 * pairs <= shape.head_dim && q_rope.node->shape[2] == shape.head_dim &&
         gpu::DeviceAttention::turns_inside(shape, device_->context().capabilities());
}

Result<VulkanBackend::FoldedRope> VulkanBackend::fold_ropes(Recording& recording, const BatchItem& q_rope,
                                                            const BatchItem& k_rope) {
  FoldedRope folded;
  auto q = recorded_input(recording, q_rope.inputs[0]);
  if (!q) return q.status();
  auto keys = recorded_input(recording, k_rope.inputs[0]);
  if (!keys) return keys.status();
  auto angles = angle_table(recording, *q_rope.node, q_rope.inputs);
  if (!angles) return angles.status();
  auto turned_q = device_side(q_rope.output, false);
  if (!turned_q) return turned_q.status();
  auto turned_keys = device_side(k_rope.output, false);
  if (!turned_keys) return turned_keys.status();
  folded.q = q.value();
  folded.keys = keys.value();
  folded.rope = {.angles = angles.value(),
                 .turned_q = turned_q.value(),
                 .turned_keys = turned_keys.value(),
                 .pairs = static_cast<uint32_t>(q_rope.node->params.rotary_dims / 2),
                 .neox = rope_params(q_rope.node->params).style == cpu::RopeStyle::neox};
  return folded;
}

Status VulkanBackend::record_rope(gpu::CommandBatch& batch, Recording& recording, const Node& node,
                                  std::span<const Tensor> inputs, gpu::DeviceBuffer& y, const BatchItem* alongside) {
  auto x = recorded_input(recording, inputs[0]);
  if (!x) return x.status();
  std::optional<gpu::RowOps::SecondRope> second;
  if (alongside != nullptr) {
    auto second_x = recorded_input(recording, alongside->inputs[0]);
    if (!second_x) return second_x.status();
    auto second_y = device_side(alongside->output, false);
    if (!second_y) return second_y.status();
    second = gpu::RowOps::SecondRope{second_x.value(), second_y.value(), static_cast<uint32_t>(alongside->node->shape[1])};
  }
  const int64_t tokens = node.shape[0], pairs = node.params.rotary_dims / 2;
  const cpu::RopeParams params = rope_params(node.params);
  auto angles = angle_table(recording, node, inputs);
  if (!angles) return angles.status();
  return from_gpu(device_->row_ops().record_rope(
      batch, *x.value(), *angles.value(), y, static_cast<uint32_t>(tokens), static_cast<uint32_t>(node.shape[1]),
      static_cast<uint32_t>(node.shape[2]), static_cast<uint32_t>(pairs), params.style == cpu::RopeStyle::neox, second));
}

bool VulkanBackend::turns_alongside(const BatchItem& rope, const BatchItem& next) {
  if (next.node->op != Op::rope) return false;
  const Node &first = *rope.node, &second = *next.node;
  const cpu::RopeParams a = rope_params(first.params), b = rope_params(second.params);
  const auto positions = [](const BatchItem& item) {
    return item.inputs.size() > 1 && item.inputs[1].defined() ? item.inputs[1].buffer().get() : nullptr;
  };
  return a.style == b.style && a.rotary_dims == b.rotary_dims && a.base == b.base &&
         a.position_offset == b.position_offset && a.position_scale == b.position_scale &&
         positions(rope) == positions(next) && first.shape[0] == second.shape[0] && first.shape[2] == second.shape[2] &&
         next.inputs[0].buffer() != rope.output.buffer();
}

}  // namespace ember
