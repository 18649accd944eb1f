#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu/interleaved_weights.h"
#include "cpu/matmul.h"
#include "cpu/quantize.h"
#include "cpu/quantized_dot.h"
#include "cpu/row_split.h"
#include "cpu/threads.h"

namespace ember::cpu {
namespace {

// A tile's activation rows: enough that each unpacked weight block is reused many times,
// few enough that the tile's activation bytes (64 rows of a 5632-wide layer: 380 KB of
// q8_0) stay in a core's L2 while the weight rows stream past.
constexpr int64_t kTileColumns = 64;
// Weight bytes of one tile: few enough that a prompt's tile of weights stays in a core's
// L2 while its activation tiles pass, enough that a tile's setup cost vanishes.
constexpr int64_t kTileWeightBytes = 256 * 1024;
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

// How one product's weight rows are cut: the tile kernel for its layout, and the rows
// per tile, about kTileWeightBytes of weights.
struct ProductTiles {
  QuantizedTile tile;
  int64_t weight_row_bytes, blocks, tile_rows;
};

ProductTiles split_into_tiles(const LinearOfX& product, int64_t rows, int64_t in_features) {
  // Tiles start on multiples of kRowGroup rows, so an interleaved tile starts on a group.
  static_assert(kRowGroup % kInterleavedRows == 0);
  const ElementType type = product.weight_type;
  ProductTiles split{};
  split.tile = product.layout == WeightLayout::interleaved ? interleaved_tile(type, active_isa())
                                                            : quantized_tile(type, active_isa());
  split.weight_row_bytes = element_row_bytes(type, in_features);
  split.blocks = in_features / block_elements(type);
  split.tile_rows = rows_for_bytes(kTileWeightBytes, split.weight_row_bytes, kRowGroup);
  if (rows > 1) split.tile_rows = std::max(split.tile_rows, kMinPrefillTileRows);
  return split;
}

// At most a layer's q, k and v share an x; a longer group runs in more regions.
constexpr size_t kMostProducts = 4;

// One parallel region over the tiles of up to kMostProducts products of the activations
// already quantized.
void run_product_tiles(const std::byte* activations, int64_t activation_row_bytes, int64_t rows, int64_t in_features,
                       std::span<const LinearOfX> products) {
  ProductTiles splits[kMostProducts];
  RowShare shares[kMostProducts];
  int64_t group_bytes = 0;
  for (const LinearOfX& product : products)
    group_bytes += std::max<int64_t>(0, product.out_features) * element_row_bytes(product.weight_type, in_features);
  for (size_t p = 0; p < products.size(); ++p) {
    splits[p] = split_into_tiles(products[p], rows, in_features);
    shares[p] = {products[p].out_features, splits[p].weight_row_bytes, splits[p].tile_rows};
  }
  // Each thread takes its rows a tile at a time, every activation tile of a weight slice
  // in turn, so it keeps those weights in cache while the (smaller) activations are read
  // again for each slice. The tile kernels sum every output in a fixed order, so the
  // split never changes a result.
  for_each_row_share(std::span<const RowShare>(shares, products.size()), kRowGroup, group_bytes * rows >= kParallelWork,
                     [&](size_t p, int64_t first_row, int64_t tile_rows) {
                       const ProductTiles& split = splits[p];
                       const LinearOfX& product = products[p];
                       const auto* weight_bytes = static_cast<const std::byte*>(product.weight);
                       for (int64_t first_column = 0; first_column < rows; first_column += kTileColumns)
                         split.tile(weight_bytes + first_row * split.weight_row_bytes, split.weight_row_bytes, tile_rows,
                                    activations + first_column * activation_row_bytes, activation_row_bytes,
                                    std::min(kTileColumns, rows - first_column), split.blocks,
                                    product.y + first_column * product.out_features + first_row, product.out_features);
                     });
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
