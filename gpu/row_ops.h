// The small kernels around the linear layers, so that a whole transformer layer can stay
// on the device: elementwise add, swiglu and copy over flat f32 ranges, RMSNorm and
// LayerNorm over the last axis, rotary embedding with host-computed angles, and the row gather that reads a
// token's embedding (or picks the rows whose logits are wanted). Each records into a
// CommandBatch (gpu/command_batch.h); none keeps state between calls.
#pragma once

#include <cstdint>
#include <optional>

#include "gpu/command_batch.h"
#include "gpu/device_buffer.h"
#include "gpu/linear.h"
#include "gpu/pipeline_cache.h"

namespace ember::gpu {

// elementwise.comp's OP specialization constant.
enum class ElementwiseOp : uint32_t { add, swiglu, copy };

class RowOps {
 public:
  explicit RowOps(PipelineCache& pipelines) : pipelines_(pipelines) {}

  // out[i] = a[i] + b[i], silu(a[i]) * b[i], or a[i] (b unused: may be null), i < count.
  // With `rounded` (FusedLinear::prepare_rounded_x; count a multiple of 32), out rounded
  // to q8_0 too, in its layout.
  Status record_elementwise(CommandBatch& batch, ElementwiseOp op, const DeviceBuffer& a, const DeviceBuffer* b,
                            const DeviceBuffer& out, uint32_t count, std::optional<RoundedX> rounded = std::nullopt);
  // y = x / sqrt(mean(x^2) + eps) * weight per row of `cols`. With `residual`, x is
  // first x + residual->delta, which also goes to residual->sum (an add and the norm of
  // its result in one dispatch). With `rounded` (cols a multiple of 32), y rounded to
  // q8_0 too, as for record_elementwise.
  struct ResidualAdd {
    const DeviceBuffer* delta = nullptr;
    const DeviceBuffer* sum = nullptr;
  };
  Status record_rms_norm(CommandBatch& batch, const DeviceBuffer& x, const DeviceBuffer& weight, const DeviceBuffer& y,
                         uint32_t rows, uint32_t cols, float eps, std::optional<ResidualAdd> residual = std::nullopt,
                         std::optional<RoundedX> rounded = std::nullopt);
  // y = (x - mean) / sqrt(var + eps) * weight + bias per row of `cols` (GPT-2's LayerNorm).
  Status record_layer_norm(CommandBatch& batch, const DeviceBuffer& x, const DeviceBuffer& weight,
                           const DeviceBuffer& bias, const DeviceBuffer& y, uint32_t rows, uint32_t cols, float eps);
  // y = x [tokens, heads, head_dim] turned by `angles`, (cos, sin) f32 pairs [tokens][pairs].
  // With `second`, its x [tokens, second.heads, head_dim] too, by the same angles, in the
  // same dispatch.
  struct SecondRope {
    const DeviceBuffer* x = nullptr;
    const DeviceBuffer* y = nullptr;
    uint32_t heads = 0;
  };
  Status record_rope(CommandBatch& batch, const DeviceBuffer& x, const DeviceBuffer& angles, const DeviceBuffer& y,
                     uint32_t tokens, uint32_t heads, uint32_t head_dim, uint32_t pairs, bool neox,
                     std::optional<SecondRope> second = std::nullopt);
  // y[i] = table row ids[i] as f32, i < rows; the table holds table_rows rows of `cols`
  // values of `type` as stored in GGUF (cols a multiple of 32 for the block types; split,
  // gpu/block_layout.h, if `layout` says so), ids i32. The caller checks the ids: the
  // shader reads whatever row an id names.
  Status record_embedding(CommandBatch& batch, const DeviceBuffer& table, WeightType type, BlockLayout layout,
                          uint32_t table_rows, const DeviceBuffer& ids, const DeviceBuffer& y, uint32_t rows,
                          uint32_t cols);

 private:
  PipelineCache& pipelines_;
};

}  // namespace ember::gpu
