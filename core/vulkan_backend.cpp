#include "core/vulkan_backend.h"

#include <fmt/format.h>

#include "core/log.h"

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

// The shaders bind whole buffers from their first byte and read them densely.
bool bindable(const Tensor& tensor) { return tensor.is_contiguous() && tensor.byte_offset() == 0; }

}  // namespace

bool VulkanBackend::supports(const Node& node, std::span<const Tensor> inputs) const {
  if (device_->context().device_lost()) return false;
  if (node.op != Op::linear || inputs.size() != 3 || !gpu_activation(node.params.activation)) return false;
  const Tensor &x = inputs[0], &weight = inputs[1], &bias = inputs[2];
  if (x.dtype() != DType::f32 || !bindable(x) || weight.rank() != 2 || !bindable(weight)) return false;
  if (bias.defined() && (bias.dtype() != DType::f32 || !bindable(bias))) return false;
  const auto type = weight_type(weight.dtype());
  if (!type) return false;
  if (routing_.weights && !routing_.weights->contains(weight.buffer().get())) return false;
  const auto n = static_cast<uint64_t>(weight.dim(0)), k = static_cast<uint64_t>(weight.dim(1));
  if (n == 0 || k == 0) return false;
  if ((*type == gpu::WeightType::q8_0 || *type == gpu::WeightType::q4_0) && k % 32 != 0) return false;
  const uint64_t rows = static_cast<uint64_t>(x.elements()) / k;
  // The shaders index with 32-bit integers.
  if (rows == 0 || rows * k > UINT32_MAX || rows * n > UINT32_MAX || weight.payload_bytes() > UINT32_MAX) return false;
  return 2 * rows * k * n >= routing_.min_flops && weight.payload_bytes() >= routing_.min_weight_bytes;
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
    EMBER_RETURN_IF_ERROR(device_->attach(buffer));
    mirror = static_cast<VulkanMirror*>(buffer.device());
  }
  if (needs_current) EMBER_RETURN_IF_ERROR(buffer.ensure_device_current());
  return &mirror->device_buffer();
}

Status VulkanBackend::run(const Node& node, std::span<const Tensor> inputs, const Tensor& output) {
  const BatchItem item{&node, inputs, output};
  return run_batch(std::span(&item, 1));
}

Status VulkanBackend::run_batch(std::span<const BatchItem> items) {
  Status status = run_linears(items);
  if (status.code() == ErrorCode::out_of_memory && !device_->context().device_lost()) {
    device_->allocator().trim();
    status = run_linears(items);
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

Status VulkanBackend::run_linears(std::span<const BatchItem> items) {
  gpu::LinearBatch batch(device_->linear());
  // Outputs of the layers recorded before: their device copies will be current when the
  // batch runs, whatever the host holds now.
  std::unordered_set<const Buffer*> made_here;
  for (const BatchItem& item : items) {
    const Tensor &x = item.inputs[0], &weight = item.inputs[1], &bias = item.inputs[2];
    gpu::LinearArgs args;
    auto x_device = device_side(x, !made_here.contains(x.buffer().get()));
    if (!x_device) return x_device.status();
    auto weight_device = device_side(weight, true);
    if (!weight_device) return weight_device.status();
    if (bias.defined()) {
      auto bias_device = device_side(bias, true);
      if (!bias_device) return bias_device.status();
      args.bias = bias_device.value();
    }
    auto y_device = device_side(item.output, false);
    if (!y_device) return y_device.status();
    args.x = x_device.value();
    args.k = static_cast<uint32_t>(weight.dim(1));
    args.rows = static_cast<uint32_t>(x.elements() / weight.dim(1));
    args.weights = weight_device.value();
    args.weight_type = *weight_type(weight.dtype());
    args.n = static_cast<uint32_t>(weight.dim(0));
    args.activation = *gpu_activation(item.node->params.activation);
    args.y = y_device.value();
    EMBER_RETURN_IF_ERROR(from_gpu(batch.add(args)));
    made_here.insert(item.output.buffer().get());
  }
  EMBER_RETURN_IF_ERROR(from_gpu(batch.run()));
  for (const BatchItem& item : items) item.output.buffer()->mark_device_written();
  return {};
}

}  // namespace ember
