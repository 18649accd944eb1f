#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu/interleaved_weights.h"
#include "cpu/matmul.h"
#include "cpu/quantize.h"
#include "cpu/quantized_dot.h"
#include "cpu/threads.h"

namespace ember::cpu {
namespace {

// A tile's activation rows: enough that each unpacked weight block is reused many times,
// few enough that the tile's activation bytes (64 rows of a 5632-wide layer: 380 KB of
// q8_0) stay in a core's L2 while the weight rows stream past.
constexpr int64_t kTileColumns = 64;
// Weight bytes of one tile: small enough that threads get several tiles each (the last one
// then finishes soon after the others), large enough that a tile's setup cost vanishes.
constexpr int64_t kTileWeightBytes = 256 * 1024;
// Tiles per thread wanted when the matrix is small enough that kTileWeightBytes would
// leave some threads idle.
constexpr int64_t kTilesPerThread = 8;
// Weight rows per tile come in multiples of this: the 512-bit kernels run 16 weight rows
// down the lanes of a vector.
constexpr int64_t kRowGroup = 16;
// With several activation rows the kernels transpose each 16-row slab of weights once per
// call and reuse it across the activation rows: calls of fewer weight rows than this
// spend too much of their time on that setup.
constexpr int64_t kMinPrefillTileRows = 64;
// Below this many weight bytes times activation rows one thread does the whole product:
// a parallel region costs more than it saves.
constexpr int64_t kParallelWork = 128 * 1024;

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// The activations quantized for the current product, reused between calls so decoding
// does not allocate per layer. Per calling thread: two threads may run products at once.
std::byte* activation_scratch(int64_t bytes) {
  thread_local std::vector<std::byte> scratch;
  if (static_cast<int64_t>(scratch.size()) < bytes) scratch.resize(static_cast<size_t>(bytes));
  return scratch.data();
}

}  // namespace

void quantized_matmul(const float* x, int64_t rows, int64_t in_features, const void* weight, ElementType weight_type,
                      float* y, int64_t out_features, WeightLayout layout) {
  if (rows <= 0 || out_features <= 0) return;
  const DType activation_type = activation_dtype(weight_type);
  const int64_t activation_row_bytes = row_bytes(activation_type, in_features);
  std::byte* activations = activation_scratch(rows * activation_row_bytes);
  quantize_rows(activation_type, x, rows, in_features, activations);

  // Tiles start on multiples of kRowGroup rows, so an interleaved tile starts on a group.
  static_assert(kRowGroup % kInterleavedRows == 0);
  const QuantizedTile tile = layout == WeightLayout::interleaved ? interleaved_tile(weight_type, active_isa())
                                                                 : quantized_tile(weight_type, active_isa());
  const int64_t weight_row_bytes = element_row_bytes(weight_type, in_features);
  const int64_t blocks = in_features / block_elements(weight_type);
  const int64_t thread_count = threads();
  const int64_t rows_for_balance = (out_features + thread_count * kTilesPerThread - 1) / (thread_count * kTilesPerThread);
  const int64_t rows_for_cache = std::max<int64_t>(1, kTileWeightBytes / std::max<int64_t>(1, weight_row_bytes));
  int64_t tile_rows = round_up(std::max<int64_t>(1, std::min(rows_for_balance, rows_for_cache)), kRowGroup);
  if (rows > 1) tile_rows = std::max(tile_rows, kMinPrefillTileRows);
  const int64_t row_tiles = (out_features + tile_rows - 1) / tile_rows;
  const int64_t column_tiles = (rows + kTileColumns - 1) / kTileColumns;
  const bool parallel = out_features * weight_row_bytes * rows >= kParallelWork;
  const auto* weight_bytes = static_cast<const std::byte*>(weight);
  // Tiles of one weight slice are consecutive, so a thread keeps its weights in cache
  // while the (smaller) activations are read again for each slice. The tile kernels sum
  // every output in a fixed order, so the split never changes a result.
#pragma omp parallel for num_threads(thread_count) schedule(static) if (parallel)
  for (int64_t item = 0; item < row_tiles * column_tiles; ++item) {
    const int64_t first_row = item / column_tiles * tile_rows;
    const int64_t first_column = item % column_tiles * kTileColumns;
    tile(weight_bytes + first_row * weight_row_bytes, weight_row_bytes, std::min(tile_rows, out_features - first_row),
         activations + first_column * activation_row_bytes, activation_row_bytes,
         std::min(kTileColumns, rows - first_column), blocks, y + first_column * out_features + first_row,
         out_features);
  }
}

}  // namespace ember::cpu
