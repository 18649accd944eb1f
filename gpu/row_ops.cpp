#include "gpu/row_ops.h"

#include <bit>
#include <string>

namespace ember::gpu {

namespace {

constexpr uint32_t kInvocations = 256;  // every row-op shader's workgroup

Status too_small(const char* op, const char* what, const DeviceBuffer& buffer, uint64_t needed) {
  return {ErrorKind::invalid_argument, std::string("GPU ") + op + ": " + what + " buffer holds " +
                                           std::to_string(buffer.bytes()) + " bytes, " + std::to_string(needed) +
                                           " needed"};
}

}  // namespace

Status RowOps::record_elementwise(CommandBatch& batch, ElementwiseOp op, const DeviceBuffer& a, const DeviceBuffer* b,
                                  const DeviceBuffer& out, uint32_t count, std::optional<RoundedX> rounded) {
  const uint64_t bytes = uint64_t{count} * 4;
  if (a.bytes() < bytes) return too_small("elementwise", "a", a, bytes);
  if (op != ElementwiseOp::copy && (b == nullptr || b->bytes() < bytes))
    return b == nullptr ? Status{ErrorKind::invalid_argument, "GPU elementwise: b is required"}
                        : too_small("elementwise", "b", *b, bytes);
  if (out.bytes() < bytes) return too_small("elementwise", "out", out, bytes);
  EMBER_GPU_RETURN_IF_ERROR(check_rounding("elementwise", rounded, count));
  auto groups = flat_grid(batch.context(), (uint64_t{count} + kInvocations - 1) / kInvocations);
  if (!groups) return groups.status();
  auto pipeline = pipelines_.get(ShaderId::elementwise, {static_cast<uint32_t>(op), rounded ? 1u : 0u,
                                                         rounded ? rounded->layout : 0u});
  if (!pipeline) return pipeline.status();
  // copy never reads binding 1, nor does the shader touch binding 3 without a rounding,
  // but they must name buffers.
  auto set = batch.descriptor_set(*pipeline.value(),
                                  {&a, b != nullptr ? b : &a, &out, rounded ? rounded->buffer : &out});
  if (!set) return set.status();
  batch.add({.pipeline = pipeline.value(), .set = set.value(), .push = {count}, .push_words = 1, .groups = groups.value()});
  return {};
}

Status RowOps::record_rms_norm(CommandBatch& batch, const DeviceBuffer& x, const DeviceBuffer& weight,
                               const DeviceBuffer& y, uint32_t rows, uint32_t cols, float eps,
                               std::optional<ResidualAdd> residual, std::optional<RoundedX> rounded) {
  const uint64_t bytes = uint64_t{rows} * cols * 4;
  if (x.bytes() < bytes) return too_small("rms_norm", "x", x, bytes);
  if (weight.bytes() < uint64_t{cols} * 4) return too_small("rms_norm", "weight", weight, uint64_t{cols} * 4);
  if (y.bytes() < bytes) return too_small("rms_norm", "y", y, bytes);
  if (residual && residual->delta->bytes() < bytes) return too_small("rms_norm", "residual", *residual->delta, bytes);
  if (residual && residual->sum->bytes() < bytes) return too_small("rms_norm", "sum", *residual->sum, bytes);
  if (rounded && cols % 32 != 0)
    return {ErrorKind::invalid_argument,
            "GPU rms_norm: rounding to q8_0 needs rows of whole blocks of 32, not " + std::to_string(cols) + " values"};
  EMBER_GPU_RETURN_IF_ERROR(check_rounding("rms_norm", rounded, uint64_t{rows} * cols));
  auto groups = flat_grid(batch.context(), rows);
  if (!groups) return groups.status();
  auto pipeline = pipelines_.get(ShaderId::rms_norm, {residual ? 1u : 0u, rounded ? 1u : 0u,
                                                      rounded ? rounded->layout : 0u});
  if (!pipeline) return pipeline.status();
  // Without a residual the shader never touches bindings 3 and 4, nor binding 5 without a
  // rounding, but they must name buffers.
  auto set = batch.descriptor_set(*pipeline.value(), {&x, &weight, &y, residual ? residual->delta : &x,
                                                      residual ? residual->sum : &y, rounded ? rounded->buffer : &y});
  if (!set) return set.status();
  batch.add({.pipeline = pipeline.value(), .set = set.value(), .push = {rows, cols, std::bit_cast<uint32_t>(eps)},
             .push_words = 3, .groups = groups.value()});
  return {};
}

Status RowOps::record_layer_norm(CommandBatch& batch, const DeviceBuffer& x, const DeviceBuffer& weight,
                                 const DeviceBuffer& bias, const DeviceBuffer& y, uint32_t rows, uint32_t cols,
                                 float eps) {
  const uint64_t bytes = uint64_t{rows} * cols * 4;
  if (x.bytes() < bytes) return too_small("layer_norm", "x", x, bytes);
  if (weight.bytes() < uint64_t{cols} * 4) return too_small("layer_norm", "weight", weight, uint64_t{cols} * 4);
  if (bias.bytes() < uint64_t{cols} * 4) return too_small("layer_norm", "bias", bias, uint64_t{cols} * 4);
  if (y.bytes() < bytes) return too_small("layer_norm", "y", y, bytes);
  auto groups = flat_grid(batch.context(), rows);
  if (!groups) return groups.status();
  auto pipeline = pipelines_.get(ShaderId::layer_norm, {});
  if (!pipeline) return pipeline.status();
  auto set = batch.descriptor_set(*pipeline.value(), {&x, &weight, &bias, &y});
  if (!set) return set.status();
  batch.add({.pipeline = pipeline.value(), .set = set.value(), .push = {rows, cols, std::bit_cast<uint32_t>(eps)},
             .push_words = 3, .groups = groups.value()});
  return {};
}

Status RowOps::record_rope(CommandBatch& batch, const DeviceBuffer& x, const DeviceBuffer& angles,
                           const DeviceBuffer& y, uint32_t tokens, uint32_t heads, uint32_t head_dim, uint32_t pairs,
                           bool neox, std::optional<SecondRope> second) {
  const uint64_t elements = uint64_t{tokens} * heads * head_dim;
  const uint64_t second_elements = second ? uint64_t{tokens} * second->heads * head_dim : 0;
  if (2 * pairs > head_dim)
    return {ErrorKind::invalid_argument, "GPU rope: " + std::to_string(pairs) + " pairs do not fit a head of " +
                                             std::to_string(head_dim)};
  if (x.bytes() < elements * 4) return too_small("rope", "x", x, elements * 4);
  if (angles.bytes() < uint64_t{tokens} * pairs * 8) return too_small("rope", "angle", angles, uint64_t{tokens} * pairs * 8);
  if (y.bytes() < elements * 4) return too_small("rope", "y", y, elements * 4);
  if (second && second->x->bytes() < second_elements * 4) return too_small("rope", "second x", *second->x, second_elements * 4);
  if (second && second->y->bytes() < second_elements * 4) return too_small("rope", "second y", *second->y, second_elements * 4);
  auto groups = flat_grid(batch.context(), (elements + second_elements + kInvocations - 1) / kInvocations);
  if (!groups) return groups.status();
  auto pipeline = pipelines_.get(ShaderId::rope, {neox ? 1u : 0u});
  if (!pipeline) return pipeline.status();
  // Without a second tensor the shader never touches bindings 3 and 4, but they must name buffers.
  auto set = batch.descriptor_set(*pipeline.value(), {&x, &angles, &y, second ? second->x : &x, second ? second->y : &y});
  if (!set) return set.status();
  batch.add({.pipeline = pipeline.value(), .set = set.value(),
             .push = {tokens, heads, head_dim, pairs, second ? second->heads : 0u}, .push_words = 5,
             .groups = groups.value()});
  return {};
}

Status RowOps::record_embedding(CommandBatch& batch, const DeviceBuffer& table, WeightType type, BlockLayout layout,
                                uint32_t table_rows, const DeviceBuffer& ids, const DeviceBuffer& y, uint32_t rows,
                                uint32_t cols) {
  if (is_block(type) && cols % 32 != 0)
    return {ErrorKind::invalid_argument,
            "GPU embedding: block tables need rows of a multiple of 32 values, not " + std::to_string(cols)};
  const uint64_t row_bytes = weight_row_bytes(type, cols);
  const uint64_t elements = uint64_t{rows} * cols;
  if (elements > UINT32_MAX || row_bytes * table_rows > UINT32_MAX)
    return {ErrorKind::invalid_argument, "GPU embedding: more than 2^32 elements or table bytes"};
  if (table.bytes() < row_bytes * table_rows) return too_small("embedding", "table", table, row_bytes * table_rows);
  if (layout == BlockLayout::split &&
      (!is_block(type) || table.bytes() / block_bytes(type) != uint64_t{table_rows} * (cols / 32)))
    return {ErrorKind::invalid_argument, "GPU embedding: a split table must be of blocks and fill its buffer"};
  if (ids.bytes() < uint64_t{rows} * 4) return too_small("embedding", "id", ids, uint64_t{rows} * 4);
  if (y.bytes() < elements * 4) return too_small("embedding", "y", y, elements * 4);
  auto groups = flat_grid(batch.context(), (elements + kInvocations - 1) / kInvocations);
  if (!groups) return groups.status();
  auto pipeline = pipelines_.get(ShaderId::embedding, {static_cast<uint32_t>(type), static_cast<uint32_t>(layout)});
  if (!pipeline) return pipeline.status();
  auto set = batch.descriptor_set(*pipeline.value(), {&table, &ids, &y});
  if (!set) return set.status();
  batch.add({.pipeline = pipeline.value(), .set = set.value(),
             .push = {rows, cols, static_cast<uint32_t>(row_bytes), table_rows}, .push_words = 4,
             .groups = groups.value()});
  return {};
}

}  // namespace ember::gpu
