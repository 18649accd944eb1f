// The small kernels around the linear layers, so that a whole transformer layer can stay
// on the device: elementwise add, swiglu and copy over flat f32 ranges, RMSNorm over the
// last axis, and rotary embedding with host-computed angles. Each records into a
// CommandBatch (gpu/command_batch.h); none keeps state between calls.
#pragma once

#include <cstdint>

#include "gpu/command_batch.h"
#include "gpu/device_buffer.h"
#include "gpu/pipeline_cache.h"

namespace ember::gpu {

// elementwise.comp's OP specialization constant.
enum class ElementwiseOp : uint32_t { add, swiglu, copy };

class RowOps {
 public:
  explicit RowOps(PipelineCache& pipelines) : pipelines_(pipelines) {}

  // out[i] = a[i] + b[i], silu(a[i]) * b[i], or a[i] (b unused: may be null), i < count.
  Status record_elementwise(CommandBatch& batch, ElementwiseOp op, const DeviceBuffer& a, const DeviceBuffer* b,
                            const DeviceBuffer& out, uint32_t count);
  // y = x / sqrt(mean(x^2) + eps) * weight per row of `cols`.
  Status record_rms_norm(CommandBatch& batch, const DeviceBuffer& x, const DeviceBuffer& weight, const DeviceBuffer& y,
                         uint32_t rows, uint32_t cols, float eps);
  // y = x [tokens, heads, head_dim] turned by `angles`, (cos, sin) f32 pairs [tokens][pairs].
  Status record_rope(CommandBatch& batch, const DeviceBuffer& x, const DeviceBuffer& angles, const DeviceBuffer& y,
                     uint32_t tokens, uint32_t heads, uint32_t head_dim, uint32_t pairs, bool neox);

 private:
  PipelineCache& pipelines_;
};

}  // namespace ember::gpu
