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

bool run_together(ElementType a, ElementType b, int64_t rows) {
  if (is_block_quantized(a) || is_block_quantized(b))
    return is_block_quantized(a) && is_block_quantized(b) && activation_dtype(a) == activation_dtype(b);
  return rows == 1;
}

namespace {

// One product's split into tiles of tile_rows weight rows × kTileColumns activation rows,
// and where its tiles start in the group's single list.
struct ProductTiles {
  QuantizedTile tile;
  int64_t weight_row_bytes, blocks, tile_rows, column_tiles, first_item, items;
};

// Tiles hold about the same weight bytes in every product of a group (group_bytes, the
// weight bytes of all of them, over the tiles wanted), so a static split of the group's
// single list gives each thread its share of the bytes.
ProductTiles split_into_tiles(const LinearOfX& product, int64_t rows, int64_t in_features, int64_t group_bytes,
                              int64_t first_item) {
  // Tiles start on multiples of kRowGroup rows, so an interleaved tile starts on a group.
  static_assert(kRowGroup % kInterleavedRows == 0);
  const ElementType type = product.weight_type;
  ProductTiles split{};
  split.tile = product.layout == WeightLayout::interleaved ? interleaved_tile(type, active_isa())
                                                            : quantized_tile(type, active_isa());
  split.weight_row_bytes = element_row_bytes(type, in_features);
  split.blocks = in_features / block_elements(type);
  const int64_t tiles_wanted_bytes = threads() * kTilesPerThread * split.weight_row_bytes;
  const int64_t rows_for_balance = (group_bytes + tiles_wanted_bytes - 1) / tiles_wanted_bytes;
  const int64_t rows_for_cache = std::max<int64_t>(1, kTileWeightBytes / std::max<int64_t>(1, split.weight_row_bytes));
  split.tile_rows = round_up(std::max<int64_t>(1, std::min(rows_for_balance, rows_for_cache)), kRowGroup);
  if (rows > 1) split.tile_rows = std::max(split.tile_rows, kMinPrefillTileRows);
  split.column_tiles = (rows + kTileColumns - 1) / kTileColumns;
  split.first_item = first_item;
  split.items = (std::max<int64_t>(0, product.out_features) + split.tile_rows - 1) / split.tile_rows * split.column_tiles;
  return split;
}

}  // namespace

namespace {

// At most a layer's q, k and v share an x; a longer group runs in more regions.
constexpr size_t kMostProducts = 4;

// One parallel region over the tiles of up to kMostProducts products of the activations
// already quantized.
void run_product_tiles(const std::byte* activations, int64_t activation_row_bytes, int64_t rows, int64_t in_features,
                       std::span<const LinearOfX> products) {
  ProductTiles splits[kMostProducts];
  int64_t group_bytes = 0;
  for (const LinearOfX& product : products)
    group_bytes += std::max<int64_t>(0, product.out_features) * element_row_bytes(product.weight_type, in_features);
  int64_t items = 0;
  for (size_t p = 0; p < products.size(); ++p) {
    splits[p] = split_into_tiles(products[p], rows, in_features, group_bytes, items);
    items += splits[p].items;
  }
  // Tiles of one weight slice are consecutive, so a thread keeps its weights in cache
  // while the (smaller) activations are read again for each slice. The tile kernels sum
  // every output in a fixed order, so the split never changes a result.
#pragma omp parallel for num_threads(threads()) schedule(static) if (group_bytes * rows >= kParallelWork)
  for (int64_t item = 0; item < items; ++item) {
    size_t p = 0;
    while (item >= splits[p].first_item + splits[p].items) ++p;
    const ProductTiles& split = splits[p];
    const LinearOfX& product = products[p];
    const int64_t local = item - split.first_item;
    const int64_t first_row = local / split.column_tiles * split.tile_rows;
    const int64_t first_column = local % split.column_tiles * kTileColumns;
    const auto* weight_bytes = static_cast<const std::byte*>(product.weight);
    split.tile(weight_bytes + first_row * split.weight_row_bytes, split.weight_row_bytes,
               std::min(split.tile_rows, product.out_features - first_row),
               activations + first_column * activation_row_bytes, activation_row_bytes,
               std::min(kTileColumns, rows - first_column), split.blocks,
               product.y + first_column * product.out_features + first_row, product.out_features);
  }
}

}  // namespace

void quantized_matmul_group(const float* x, int64_t rows, int64_t in_features, std::span<const LinearOfX> products) {
  if (rows <= 0 || products.empty()) return;
  const DType activation_type = activation_dtype(products.front().weight_type);
  const int64_t activation_row_bytes = row_bytes(activation_type, in_features);
  std::byte* activations = activation_scratch(rows * activation_row_bytes);
  quantize_rows(activation_type, x, rows, in_features, activations);
  for (size_t first = 0; first < products.size(); first += kMostProducts)
    run_product_tiles(activations, activation_row_bytes, rows, in_features,
                      products.subspan(first, std::min(kMostProducts, products.size() - first)));
}

void quantized_matmul(const float* x, int64_t rows, int64_t in_features, const void* weight, ElementType weight_type,
                      float* y, int64_t out_features, WeightLayout layout) {
  if (out_features <= 0) return;
  const LinearOfX product = LinearOfX::product(weight, weight_type, y, out_features, layout);
  quantized_matmul_group(x, rows, in_features, std::span<const LinearOfX>(&product, 1));
}

}  // namespace ember::cpu
