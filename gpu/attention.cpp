#include "gpu/attention.h"

#include <bit>
#include <string>

namespace ember::gpu {

namespace {

constexpr uint32_t kStoreInvocations = 256;  // kv_store.comp's workgroup
// attention_tiled.comp's query rows per workgroup, its threads, and its largest key tile.
constexpr uint32_t kTiledQueries = 16, kTiledThreads = 128, kTiledKeys = 32;

// attention_tiled.comp's shared memory: the query tile, a key or value tile with rows
// padded by 4 floats, the weights with rows padded by 1, per-thread partial maxima and
// sums, and three floats per query row.
uint64_t tiled_shared_bytes(uint32_t head_dim, uint32_t keys) {
  const uint64_t floats = uint64_t{kTiledQueries} * head_dim + uint64_t{keys} * (head_dim + 4) +
                          kTiledQueries * (keys + 1) + 2 * kTiledThreads + 3 * kTiledQueries;
  return 4 * floats;
}

Status invalid(const std::string& message) { return {ErrorKind::invalid_argument, "GPU attention: " + message}; }

uint64_t cache_bytes(const AttentionShape& shape) {
  const uint64_t elements = uint64_t{shape.cache_rows} * shape.kv_heads * shape.head_dim;
  return shape.cache_type == CacheType::f32 ? 4 * elements : 2 * elements;
}

Status check(const AttentionShape& shape) {
  if (shape.tokens == 0 || shape.q_heads == 0 || shape.kv_heads == 0 || shape.head_dim == 0)
    return invalid("empty shape");
  if (shape.q_heads % shape.kv_heads != 0)
    return invalid(std::to_string(shape.q_heads) + " query heads do not share " + std::to_string(shape.kv_heads) +
                   " kv heads evenly");
  if (shape.head_dim % 2 != 0 || shape.head_dim > DeviceAttention::kMaxHeadDim)
    return invalid("head size " + std::to_string(shape.head_dim) + ": even and at most " +
                   std::to_string(DeviceAttention::kMaxHeadDim) + " here");
  if (uint64_t{shape.position} + shape.tokens > shape.cache_rows)
    return invalid("positions " + std::to_string(shape.position) + ".." +
                   std::to_string(uint64_t{shape.position} + shape.tokens - 1) + " past the cache's " +
                   std::to_string(shape.cache_rows) + " rows");
  return {};
}

}  // namespace

uint32_t DeviceAttention::tile_keys(const AttentionShape& shape, const DeviceCapabilities& caps) {
  if (shape.tokens < kTiledFromTokens || shape.head_dim % 4 != 0 || shape.head_dim > kMaxHeadDim) return 0;
  for (const uint32_t keys : {kTiledKeys, kTiledKeys / 2})
    if (tiled_shared_bytes(shape.head_dim, keys) <= caps.max_shared_memory_bytes) return keys;
  return 0;
}

bool DeviceAttention::rounds_output(const AttentionShape& shape, const DeviceCapabilities& caps) {
  return shape.head_dim % 32 == 0 && tile_keys(shape, caps) == 0;
}

bool DeviceAttention::turns_inside(const AttentionShape& shape, const DeviceCapabilities& caps) {
  return tile_keys(shape, caps) == 0;
}

uint64_t DeviceAttention::scratch_floats(const AttentionShape& shape, const DeviceCapabilities& caps) {
  if (tile_keys(shape, caps) != 0) return 0;
  return uint64_t{shape.tokens} * shape.q_heads * (uint64_t{shape.position} + shape.tokens);
}

Status DeviceAttention::record(CommandBatch& batch, const AttentionShape& shape, const AttentionBuffers& buffers,
                               std::optional<RoundedX> rounded, std::optional<AttentionRope> rope) {
  EMBER_GPU_RETURN_IF_ERROR(check(shape));
  const AttentionBuffers& b = buffers;
  if (b.q == nullptr || b.new_keys == nullptr || b.new_values == nullptr || b.key_cache == nullptr ||
      b.value_cache == nullptr || b.out == nullptr)
    return invalid("q, the new keys and values, both caches and out are required");
  const uint64_t rows_end = uint64_t{shape.first_row} + shape.tokens;
  const uint64_t q_bytes = rows_end * shape.q_heads * shape.head_dim * 4;
  if (b.q->bytes() < q_bytes || b.out->bytes() < q_bytes) return invalid("query or output buffer too small");
  const uint64_t new_bytes = rows_end * shape.kv_heads * shape.head_dim * 4;
  if (b.new_keys->bytes() < new_bytes || b.new_values->bytes() < new_bytes) return invalid("new rows buffer too small");
  if (b.key_cache->bytes() < cache_bytes(shape) || b.value_cache->bytes() < cache_bytes(shape))
    return invalid("cache buffer too small");
  const DeviceCapabilities& caps = batch.context().capabilities();
  const uint32_t keys = tile_keys(shape, caps);
  const uint32_t workgroup_rows = keys != 0 ? (shape.tokens + kTiledQueries - 1) / kTiledQueries : shape.tokens;
  if (workgroup_rows > caps.max_workgroup_count[0] || shape.q_heads > caps.max_workgroup_count[1])
    return invalid("too many query rows or heads for one dispatch");
  const uint32_t cache_type = static_cast<uint32_t>(shape.cache_type);
  if (rounded && !rounds_output(shape, caps))
    return invalid("only the row shader rounds its output, and only heads of whole blocks of 32 (head_dim " +
                   std::to_string(shape.head_dim) + ")");
  EMBER_GPU_RETURN_IF_ERROR(check_rounding("attention", rounded, rows_end * shape.q_heads * shape.head_dim));
  if (rope) {
    if (!turns_inside(shape, caps)) return invalid("only the row shader turns q and the keys itself");
    if (rope->pairs == 0 || 2 * rope->pairs > shape.head_dim)
      return invalid(std::to_string(rope->pairs) + " rotary pairs for heads of " + std::to_string(shape.head_dim));
    if (rope->angles == nullptr || rope->turned_q == nullptr || rope->turned_keys == nullptr)
      return invalid("the rotary embedding needs its angles and both turned outputs");
    if (rope->angles->bytes() < rows_end * rope->pairs * 2 * sizeof(float)) return invalid("angle table too small");
    if (rope->turned_q->bytes() < q_bytes || rope->turned_keys->bytes() < new_bytes)
      return invalid("turned query or key buffer too small");
  }
  if (keys != 0) {
    const uint64_t row = uint64_t{shape.kv_heads} * shape.head_dim;
    const uint64_t count = uint64_t{shape.tokens} * row;
    const uint64_t per_invocation = shape.cache_type == CacheType::f16 ? 2 : 1;
    auto grid = flat_grid(batch.context(), (count / per_invocation + kStoreInvocations - 1) / kStoreInvocations);
    if (!grid) return invalid("too many new rows for one dispatch");
    auto store = pipelines_.get(ShaderId::kv_store, {cache_type});
    if (!store) return store.status();
    auto pipeline = pipelines_.get(ShaderId::attention_tiled, {cache_type, shape.head_dim, keys});
    if (!pipeline) return pipeline.status();
    auto store_set = batch.descriptor_set(*store.value(), {b.new_keys, b.key_cache, b.new_values, b.value_cache});
    if (!store_set) return store_set.status();
    auto set = batch.descriptor_set(*pipeline.value(), {b.q, b.key_cache, b.value_cache, b.out});
    if (!set) return set.status();
    batch.add({.pipeline = store.value(),
               .set = store_set.value(),
               .push = {static_cast<uint32_t>(shape.first_row * row), static_cast<uint32_t>(shape.position * row),
                        static_cast<uint32_t>(count)},
               .push_words = 3,
               .groups = {grid.value()[0], grid.value()[1], 2}});
    batch.add({.pipeline = pipeline.value(),
               .set = set.value(),
               .push = {shape.first_row, shape.tokens, shape.q_heads, shape.kv_heads, shape.position,
                        std::bit_cast<uint32_t>(shape.scale)},
               .push_words = 6,
               .groups = {workgroup_rows, shape.q_heads, 1}});
    return {};
  }
  const uint32_t stride = shape.position + shape.tokens;
  if (b.scratch == nullptr || b.scratch->bytes() < 4 * scratch_floats(shape, caps)) return invalid("scratch too small");
  const uint32_t rope_style = !rope ? 0u : rope->neox ? 2u : 1u;
  auto pipeline =
      pipelines_.get(ShaderId::attention, {cache_type, rounded ? 1u : 0u, rounded ? rounded->layout : 0u, rope_style});
  if (!pipeline) return pipeline.status();
  // Without a rounding the shader never touches binding 7, nor 8-10 without a rope, but
  // each must name a buffer.
  auto set = batch.descriptor_set(
      *pipeline.value(), {b.q, b.new_keys, b.new_values, b.key_cache, b.value_cache, b.out, b.scratch,
                          rounded ? rounded->buffer : b.out, rope ? rope->angles : b.scratch,
                          rope ? rope->turned_q : b.out, rope ? rope->turned_keys : b.out});
  if (!set) return set.status();
  batch.add({.pipeline = pipeline.value(),
             .set = set.value(),
             .push = {shape.first_row, shape.tokens, shape.q_heads, shape.kv_heads, shape.head_dim, shape.position,
                      std::bit_cast<uint32_t>(shape.scale), stride, rope ? rope->pairs : 0u},
             .push_words = 9,
             .groups = {shape.tokens, shape.q_heads, 1}});
  return {};
}

}  // namespace ember::gpu
