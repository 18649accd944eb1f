// Attention over a KV cache on the device, for a segment of query rows of one sequence:
// store the segment's new keys and values into its caches (f32, or f16 rounded as the
// CPU rounds), and causal grouped-query attention of its queries over cache rows 0 ..
// position + tokens - 1, recorded into a CommandBatch (gpu/command_batch.h). A prompt
// stores, then attends in tiles; a short segment (a decoded token) does both in one
// dispatch.
#pragma once

#include <cstdint>
#include <optional>

#include "gpu/command_batch.h"
#include "gpu/device_buffer.h"
#include "gpu/linear.h"
#include "gpu/pipeline_cache.h"

namespace ember::gpu {

enum class CacheType : uint32_t { f32, f16 };  // the shaders' CACHE_TYPE

struct AttentionShape {
  uint32_t first_row = 0;  // the segment's first row in q, k_new, v_new and the output
  uint32_t tokens = 0;
  uint32_t position = 0;   // cache row of the segment's first token
  uint32_t q_heads = 0, kv_heads = 0, head_dim = 0;
  uint32_t cache_rows = 0;  // rows the caches hold
  CacheType cache_type = CacheType::f32;
  float scale = 1.0f;
};

// q and out [.., q_heads, head_dim] f32, the new keys and values [.., kv_heads, head_dim]
// f32, all from the segment's first_row on; the caches [cache_rows, kv_heads, head_dim];
// scratch of scratch_floats() (null where that is 0).
struct AttentionBuffers {
  const DeviceBuffer* q = nullptr;
  const DeviceBuffer* new_keys = nullptr;
  const DeviceBuffer* new_values = nullptr;
  const DeviceBuffer* key_cache = nullptr;
  const DeviceBuffer* value_cache = nullptr;
  const DeviceBuffer* out = nullptr;
  const DeviceBuffer* scratch = nullptr;
};

// A decoded token's rotary embedding, done inside the row shader: q and new_keys arrive
// unturned, the shader turns them by `angles` ((cos, sin) per [row][pair], as rope.comp
// reads them) and writes them turned to turned_q and turned_keys (the rope nodes'
// outputs, shaped as q and new_keys) besides using them.
struct AttentionRope {
  const DeviceBuffer* angles = nullptr;
  const DeviceBuffer* turned_q = nullptr;
  const DeviceBuffer* turned_keys = nullptr;
  uint32_t pairs = 0;  // rotary pairs per head, at most head_dim / 2
  bool neox = false;   // pairs (i, i + pairs), else (2i, 2i + 1)
};

class DeviceAttention {
 public:
  static constexpr uint32_t kMaxHeadDim = 256;  // attention.comp's shared query row
  // A segment of at least this many query rows runs tiled (attention_tiled.comp) where
  // its head size is a multiple of 4 and a tile fits the device's shared memory; a
  // shorter one runs a workgroup per query row (attention.comp), with scores in scratch.
  static constexpr uint32_t kTiledFromTokens = 8;

  explicit DeviceAttention(PipelineCache& pipelines) : pipelines_(pipelines) {}

  // Cache rows per key tile of the tiled shader for this segment on this device, or 0
  // where the segment takes the row shader.
  static uint32_t tile_keys(const AttentionShape& shape, const DeviceCapabilities& caps);
  // Whether record() can round this segment's output for the GEMV after it: the
  // row shader does, for heads of whole blocks of 32.
  static bool rounds_output(const AttentionShape& shape, const DeviceCapabilities& caps);
  // Whether record() can turn this segment's q and keys itself (AttentionRope): the
  // row shader does.
  static bool turns_inside(const AttentionShape& shape, const DeviceCapabilities& caps);
  // Floats of scratch that record() needs for this segment: none when tiled.
  static uint64_t scratch_floats(const AttentionShape& shape, const DeviceCapabilities& caps);

  // Stores the segment's new keys and values at rows shape.position .. of the caches and
  // writes its attention to out. Dispatches of one batch may share a scratch: they run
  // in turn. With `rounded` (FusedLinear::prepare_rounded_x), out rounded to q8_0 too, in
  // its layout: only where rounds_output(), for a segment whose rows are out's last.
  // With `rope`, q and the new keys turned first: only where turns_inside().
  Status record(CommandBatch& batch, const AttentionShape& shape, const AttentionBuffers& buffers,
                std::optional<RoundedX> rounded = std::nullopt, std::optional<AttentionRope> rope = std::nullopt);

 private:
  PipelineCache& pipelines_;
};

}  // namespace ember::gpu
