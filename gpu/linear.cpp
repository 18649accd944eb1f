#include "gpu/linear.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <string>

namespace ember::gpu {

namespace {

constexpr uint32_t kGemmTile = 32;          // linear_gemm.comp's kTile
constexpr uint32_t kFloatGemmTile = 128;    // linear_gemm_float.comp's kTile
constexpr uint32_t kGemmInvocations = 256;  // linear_gemm.comp's 16 x 16 workgroup; Vulkan only promises 128
// linear_gemm_coopmat.comp: a workgroup has an invocation per tile column; a slice row
// of x or W is 32 halves and a vector of padding, in each stage.
constexpr uint32_t kCoopmatNarrowTile = 128;
constexpr uint32_t kCoopmatWideTile = 256;
constexpr uint32_t kCoopmatSliceRowBytes = 80;
// run()'s own sets: two per call, calls serialised on the scratch buffer's mutex.
constexpr uint32_t kOwnDescriptorSets = 8;
constexpr uint32_t kQuantizeBlocksPerGroup = 4;  // quantize_rows_q8.comp's kBlocks, a block per 32 invocations
// How a product reads x from the scratch a pass before it fills: rounded to q8_0 by
// quantize_rows_q8.comp, in its X_LAYOUT for each reader (gpu/shaders/q8_planes.glsl), or
// rounded to f16 by round_rows_f16.comp for the cooperative-matrix GEMM.
enum class XLayout : uint32_t { records, q8_0_planes, q4_0_pair_planes, f16_rows };
// The bytes of one block of 32 in each q8_0 layout.
constexpr uint64_t kQuantizedBlockBytes[] = {40, 40, 72};
constexpr uint32_t kRoundingPushBytes = 8;  // both passes' push constants: rows, k
constexpr uint32_t kRoundF16Invocations = 256;  // round_rows_f16.comp's workgroup, 8 values each
// From this many input rows on, block weights go to the cooperative-matrix GEMM when it is
// there (gpu/linear.h says what that trades).
constexpr uint32_t kMinTensorCoreBlockRows = 64;
// The cooperative-matrix GEMM keeps 128-row tiles while they make this many workgroups,
// and otherwise takes the largest of 64 or 32 rows that does (or 32): a prompt through a
// 2048-wide layer makes 64 or fewer 128 x 128 tiles, half an H200's 132 multiprocessors.
// Measured on the H200 over M's four layer shapes, 512 rows (docs/PERFORMANCE.md), 128
// picked the fastest height for each; 256 took 32 rows for q and down, 25% slower there.
constexpr uint32_t kCoopmatEnoughWorkgroups = 128;
// 256-column tiles, in one stage (two do not fit 48 KiB of shared memory), only where
// they still make this many workgroups. Measured on an H100 (docs/PERFORMANCE.md,
// "Thirteenth session"): at 4096^3 f16, 512 such tiles, 888 us against 912 for 128 x 128
// in two stages; at 512 x 14336 -> 4096, 64 tiles, 713 against 488 (f16) and 844
// against 593 (split q4_0).
constexpr uint32_t kCoopmatManyWideTiles = 512;
// Past this many outputs, a GEMV over block weights takes several columns per workgroup.
// Measured on an H100 over split q4_0 weights (the layout the Vulkan backend keeps),
// 8 products to a batch: one column was as fast or faster at 2048 outputs (5632 -> 2048:
// 11.0 against 13.3 µs) and at 4096 (14336 -> 4096: 21.4 / 22.2 against 22.7 / 25.9 in
// two calls), two faster at 5632 (11.4 against 12.3) and 32000 (23.3 against 28.3); on
// an H200, 5632 -> 2048 in the file's layout: 22.8 against 27.3 (docs/PERFORMANCE.md).
constexpr uint32_t kManyGemvColumns = 4096;

// linear_common.glsl's push constant block.
struct LinearPushConstants {
  uint32_t rows, k, n, has_bias, first_column, row_bytes;
};

const char* type_name(WeightType type) {
  switch (type) {
    case WeightType::f32: return "f32";
    case WeightType::f16: return "f16";
    case WeightType::q8_0: return "q8_0";
    case WeightType::q4_0: return "q4_0";
  }
  return "?";
}

Status invalid(std::string message) { return {ErrorKind::invalid_argument, "GPU linear: " + std::move(message)}; }

Status check(const LinearArgs& args) {
  if (args.x == nullptr || args.weights == nullptr || args.y == nullptr) return invalid("x, weights and y are required");
  if (args.rows == 0 || args.k == 0 || args.n == 0)
    return invalid("empty shape (rows " + std::to_string(args.rows) + ", k " + std::to_string(args.k) + ", n " +
                   std::to_string(args.n) + ")");
  if (is_block(args.weight_type) && args.k % 32 != 0)
    return invalid(std::string(type_name(args.weight_type)) + " weights need k a multiple of 32, not " +
                   std::to_string(args.k));
  const uint64_t x_elements = uint64_t{args.rows} * args.k;
  const uint64_t y_elements = uint64_t{args.rows} * args.n;
  const uint64_t weight_bytes = weight_row_bytes(args.weight_type, args.k) * args.n;
  // The shaders index with 32-bit integers.
  if (x_elements > UINT32_MAX || y_elements > UINT32_MAX || weight_bytes > UINT32_MAX)
    return invalid("more than 2^32 elements or weight bytes in one call");
  const auto too_small = [](const char* what, const DeviceBuffer& buffer, uint64_t needed) {
    return invalid(std::string(what) + " buffer holds " + std::to_string(buffer.bytes()) + " bytes, " +
                   std::to_string(needed) + " needed");
  };
  if (args.x->bytes() < x_elements * 4) return too_small("x", *args.x, x_elements * 4);
  if (args.weights->bytes() < weight_bytes) return too_small("weight", *args.weights, weight_bytes);
  if (args.bias != nullptr && args.bias->bytes() < uint64_t{args.n} * 4)
    return too_small("bias", *args.bias, uint64_t{args.n} * 4);
  if (args.y->bytes() < y_elements * 4) return too_small("y", *args.y, y_elements * 4);
  if (args.weight_layout == BlockLayout::split) {
    if (!is_block(args.weight_type))
      return invalid(std::string(type_name(args.weight_type)) + " weights have no split layout");
    if (args.weights->bytes() / block_bytes(args.weight_type) != uint64_t{args.n} * (args.k / 32))
      return invalid("split weights must fill their buffer, which holds " + std::to_string(args.weights->bytes()) +
                     " bytes for " + std::to_string(weight_bytes));
  }
  if (args.gemv_columns > kMaxGemvColumns)
    return invalid("a GEMV workgroup takes 1 to " + std::to_string(kMaxGemvColumns) + " columns, not " +
                   std::to_string(args.gemv_columns));
  return {};
}

}  // namespace

uint64_t weight_row_bytes(WeightType type, uint64_t k) {
  switch (type) {
    case WeightType::f32: return 4 * k;
    case WeightType::f16: return 2 * k;
    case WeightType::q8_0: return k / 32 * 34;
    case WeightType::q4_0: return k / 32 * 18;
  }
  return 0;
}

uint32_t gemv_columns(WeightType type, uint32_t n) {
  return is_block(type) && n > kManyGemvColumns ? 2 : 1;
}

uint64_t rounded_x_bytes(XLayout layout, uint64_t values) {
  return layout == XLayout::f16_rows ? 2 * values : values / 32 * kQuantizedBlockBytes[static_cast<uint32_t>(layout)];
}

std::string cooperative_matrix_shortcoming(const DeviceCapabilities& caps, WeightType type, uint32_t k) {
  if (type == WeightType::f32)
    return std::string("the cooperative-matrix GEMM takes f16, q8_0 or q4_0 weights, not ") + type_name(type);
  if (k % 8 != 0) return "the cooperative-matrix GEMM needs k a multiple of 8, not " + std::to_string(k);
  if (!caps.fp16_cooperative_matrix())
    return caps.name + " has no 16x16x16 fp16 cooperative matrices in 32-wide subgroups (VK_NV_cooperative_matrix)";
  const uint32_t shared_bytes = coopmat_shared_bytes(32, kCoopmatNarrowTile, 1);
  if (caps.max_workgroup_invocations < kCoopmatNarrowTile || caps.max_shared_memory_bytes < shared_bytes)
    return caps.name + " lacks the cooperative-matrix GEMM's " + std::to_string(kCoopmatNarrowTile) +
           " invocations and " + std::to_string(shared_bytes) + " bytes of shared memory per workgroup";
  return "";
}

Result<std::unique_ptr<FusedLinear>> FusedLinear::create(Context& context, PipelineCache& pipelines,
                                                         Allocator& allocator) {
  auto sets = DescriptorSets::create(context, kOwnDescriptorSets);
  if (!sets) return sets.status();
  return std::unique_ptr<FusedLinear>(new FusedLinear(context, pipelines, allocator, std::move(sets.value())));
}

uint64_t rounded_block_bytes(uint32_t layout) {
  return layout < std::size(kQuantizedBlockBytes) ? kQuantizedBlockBytes[layout] : 0;
}

Status check_rounding(const char* op, const std::optional<RoundedX>& rounded, uint64_t count) {
  if (!rounded) return {};
  const uint64_t block_bytes = rounded_block_bytes(rounded->layout);
  const std::string what = std::string("GPU ") + op + ": ";
  if (rounded->buffer == nullptr || block_bytes == 0)
    return {ErrorKind::invalid_argument, what + "the rounding of x needs a buffer and a layout"};
  if (count % 32 != 0)
    return {ErrorKind::invalid_argument,
            what + "rounding to q8_0 needs whole blocks of 32, not " + std::to_string(count) + " values"};
  const uint64_t bytes = count / 32 * block_bytes;
  if (rounded->buffer->bytes() < bytes)
    return {ErrorKind::invalid_argument, what + "the rounded x buffer holds " + std::to_string(rounded->buffer->bytes()) +
                                             " bytes, " + std::to_string(bytes) + " needed"};
  return {};
}

Status FusedLinear::reserve_quantized_x(CommandBatch& batch, uint64_t bytes) {
  if (quantized_x_.bytes() >= bytes) return {};
  // Layers recorded into the batch before this one keep the smaller buffer until it is gone.
  auto grown = DeviceBuffer::create(allocator_, bytes, MemoryUse::device);
  if (!grown) return grown.status();
  batch.keep(std::exchange(quantized_x_, std::move(grown.value())));
  return {};
}

Result<std::optional<RoundedX>> FusedLinear::prepare_rounded_x(CommandBatch& batch, const DeviceBuffer& x,
                                                                uint32_t rows, uint32_t k, WeightType type) {
  // record()'s automatic path: one row of block weights is the GEMV, which reads x's
  // rounding in planes; more rows take a GEMM.
  if (!is_block(type) || rows != 1 || k == 0 || k % 32 != 0) return std::optional<RoundedX>{};
  const XLayout layout = type == WeightType::q4_0 ? XLayout::q4_0_pair_planes : XLayout::q8_0_planes;
  const uint64_t values = uint64_t{rows} * k;
  batch.hold(quantized_x_mutex_);
  EMBER_GPU_RETURN_IF_ERROR(reserve_quantized_x(batch, rounded_x_bytes(layout, values)));
  quantized_source_ = {batch.serial(), batch.dispatches() + 1, &x, static_cast<uint32_t>(layout), values};
  return std::optional<RoundedX>{RoundedX{&quantized_x_, static_cast<uint32_t>(layout)}};
}

Status FusedLinear::run(const LinearArgs& args) {
  CommandBatch batch(context_, *own_sets_);
  EMBER_GPU_RETURN_IF_ERROR(record(batch, args));
  return batch.run();
}

Result<double> FusedLinear::run_timed(const LinearArgs& args) {
  CommandBatch batch(context_, *own_sets_);
  EMBER_GPU_RETURN_IF_ERROR(record(batch, args));
  return batch.run_timed();
}

uint32_t coopmat_tile_rows(uint32_t rows, uint32_t n) {
  const uint64_t column_tiles = (uint64_t{n} + kCoopmatNarrowTile - 1) / kCoopmatNarrowTile;
  for (const uint32_t tile_rows : {128u, 64u})
    if ((rows + tile_rows - 1) / tile_rows * column_tiles >= kCoopmatEnoughWorkgroups) return tile_rows;
  return 32;
}

uint32_t coopmat_tile_columns(uint32_t rows, uint32_t n, uint32_t tile_rows) {
  if (tile_rows < 64) return kCoopmatNarrowTile;
  const uint64_t wide_tiles = uint64_t{(rows + tile_rows - 1) / tile_rows} * ((n + kCoopmatWideTile - 1) / kCoopmatWideTile);
  return wide_tiles >= kCoopmatManyWideTiles ? kCoopmatWideTile : kCoopmatNarrowTile;
}

uint32_t coopmat_shared_bytes(uint32_t tile_rows, uint32_t tile_columns, uint32_t stages) {
  return stages * (tile_rows + tile_columns) * kCoopmatSliceRowBytes;
}

Status FusedLinear::record(CommandBatch& batch, const LinearArgs& args) {
  EMBER_GPU_RETURN_IF_ERROR(check(args));
  const bool gemv = args.path == LinearPath::gemv || (args.path == LinearPath::automatic && args.rows == 1);
  const DeviceCapabilities& caps = context_.capabilities();
  const std::string cooperative_shortcoming = cooperative_matrix_shortcoming(caps, args.weight_type, args.k);
  if (args.path == LinearPath::cooperative_matrix && !cooperative_shortcoming.empty())
    return Status{ErrorKind::unavailable, "GPU linear: " + cooperative_shortcoming};
  const bool block_weights = is_block(args.weight_type);
  const bool cooperative =
      args.path == LinearPath::cooperative_matrix ||
      (args.path == LinearPath::automatic && !gemv && cooperative_shortcoming.empty() &&
       (!block_weights || args.rows >= kMinTensorCoreBlockRows));
  if (args.tile_rows != 0 && (!cooperative || (args.tile_rows != 128 && args.tile_rows != 64 && args.tile_rows != 32)))
    return invalid("tile rows " + std::to_string(args.tile_rows) +
                   ": only the cooperative-matrix GEMM takes them, and 128, 64 or 32");
  if (args.tile_columns != 0 &&
      (!cooperative || (args.tile_columns != kCoopmatNarrowTile && args.tile_columns != kCoopmatWideTile)))
    return invalid("tile columns " + std::to_string(args.tile_columns) +
                   ": only the cooperative-matrix GEMM takes them, and 128 or 256");
  if (args.stages != 0 && (!cooperative || args.stages > 2))
    return invalid("stages " + std::to_string(args.stages) + ": only the cooperative-matrix GEMM takes them, 1 or 2");
  // Block weights reach the GEMV and the tiled GEMM as x rounded to q8_0 blocks; the
  // cooperative-matrix GEMM reads x rounded to f16. A pass before the product rounds it.
  const bool round_x = block_weights || cooperative;
  if (!gemv && !cooperative && caps.max_workgroup_invocations < kGemmInvocations)
    return Status{ErrorKind::unavailable, "GPU linear: the tiled GEMM needs workgroups of " +
                                              std::to_string(kGemmInvocations) + " invocations; " + caps.name +
                                              " allows " + std::to_string(caps.max_workgroup_invocations)};
  const uint32_t max_groups_x = caps.max_workgroup_count[0];
  const uint32_t max_groups_y = caps.max_workgroup_count[1];
  const uint32_t tile_rows = !cooperative                ? (block_weights ? kGemmTile : kFloatGemmTile)
                             : args.tile_rows != 0 ? args.tile_rows
                                                   : coopmat_tile_rows(args.rows, args.n);
  uint32_t tile_columns = !cooperative ? tile_rows : args.tile_columns;
  uint32_t stages = args.stages;
  if (cooperative) {
    const auto fits = [&](uint32_t columns, uint32_t with_stages) {
      return caps.max_workgroup_invocations >= columns &&
             caps.max_shared_memory_bytes >= coopmat_shared_bytes(tile_rows, columns, with_stages);
    };
    if (tile_columns == 0) {
      tile_columns = coopmat_tile_columns(args.rows, args.n, tile_rows);
      if (!fits(tile_columns, 1)) tile_columns = kCoopmatNarrowTile;
    }
    if (tile_columns == kCoopmatWideTile && tile_rows < 64)
      return invalid("tile columns 256 need tile rows 64 or 128, not " + std::to_string(tile_rows));
    if (stages == 0) stages = fits(tile_columns, 2) ? 2 : 1;
    if (!fits(tile_columns, stages))
      return Status{ErrorKind::unavailable,
                    "GPU linear: " + caps.name + " lacks the " + std::to_string(tile_columns) + " invocations and " +
                        std::to_string(coopmat_shared_bytes(tile_rows, tile_columns, stages)) +
                        " bytes of shared memory per workgroup of a " + std::to_string(tile_rows) + " x " +
                        std::to_string(tile_columns) + " cooperative-matrix tile in " + std::to_string(stages) +
                        " stages"};
  }
  const uint32_t groups_x = (args.n + tile_columns - 1) / tile_columns;
  const uint32_t groups_y = gemv ? args.rows : (args.rows + tile_rows - 1) / tile_rows;
  // Both rounding passes cover x with a flat grid of workgroups.
  const uint64_t x_values = uint64_t{args.rows} * args.k;
  const uint64_t rounding_groups = cooperative ? (x_values / 8 + kRoundF16Invocations - 1) / kRoundF16Invocations
                                               : (x_values / 32 + kQuantizeBlocksPerGroup - 1) / kQuantizeBlocksPerGroup;
  const auto rounding_grid = flat_grid(context_, rounding_groups);
  if (groups_y > max_groups_y || (!gemv && groups_x > max_groups_x) || (round_x && !rounding_grid))
    return invalid("the shape needs more workgroups than the device dispatches (" + std::to_string(args.rows) +
                   " rows, n " + std::to_string(args.n) + ")");

  const ShaderId shader = gemv          ? (block_weights ? ShaderId::linear_gemv_blocks : ShaderId::linear_gemv)
                          : cooperative ? ShaderId::linear_gemm_coopmat
                          : block_weights ? ShaderId::linear_gemm
                                          : ShaderId::linear_gemm_float;
  const uint32_t columns = !gemv ? 1 : args.gemv_columns != 0 ? args.gemv_columns : gemv_columns(args.weight_type, args.n);
  // Constant 2 is the GEMV's columns per workgroup, the cooperative-matrix GEMM's tile
  // rows; 4 and 5 its tile columns and stages.
  std::vector<uint32_t> constants{static_cast<uint32_t>(args.weight_type), static_cast<uint32_t>(args.activation),
                                  cooperative ? tile_rows : columns, static_cast<uint32_t>(args.weight_layout)};
  if (cooperative) constants.insert(constants.end(), {tile_columns, stages});
  auto pipeline = pipelines_.get(shader, constants);
  if (!pipeline) return pipeline.status();
  const Pipeline* quantize_pipeline = nullptr;
  const XLayout layout = cooperative                           ? XLayout::f16_rows
                         : !gemv                                ? XLayout::records
                         : args.weight_type == WeightType::q4_0 ? XLayout::q4_0_pair_planes
                                                                : XLayout::q8_0_planes;
  const QuantizedSource source{batch.serial(), batch.dispatches(), args.x, static_cast<uint32_t>(layout), x_values};
  bool reuse_quantized_x = false;
  if (round_x) {
    batch.hold(quantized_x_mutex_);
    reuse_quantized_x = quantized_source_ == source;
  }
  if (round_x && !reuse_quantized_x) {
    auto found = cooperative ? pipelines_.get(ShaderId::round_rows_f16, {})
                             : pipelines_.get(ShaderId::quantize_rows_q8, {static_cast<uint32_t>(layout)});
    if (!found) return found.status();
    quantize_pipeline = found.value();
    EMBER_GPU_RETURN_IF_ERROR(reserve_quantized_x(batch, rounded_x_bytes(layout, x_values)));
  }

  // Without a bias the shader never reads binding 2, but it must still name a buffer.
  const DeviceBuffer* bias = args.bias != nullptr ? args.bias : args.weights;
  const DeviceBuffer* x = round_x ? &quantized_x_ : args.x;
  auto set = batch.descriptor_set(*pipeline.value(), {x, args.weights, bias, args.y});
  if (!set) return set.status();
  VkDescriptorSet quantize_set = VK_NULL_HANDLE;
  if (quantize_pipeline != nullptr) {
    auto made = batch.descriptor_set(*quantize_pipeline, {args.x, &quantized_x_});
    if (!made) return made.status();
    quantize_set = made.value();
  }

  const LinearPushConstants push{args.rows, args.k, args.n, args.bias != nullptr ? 1u : 0u, 0,
                                 static_cast<uint32_t>(weight_row_bytes(args.weight_type, args.k))};
  const auto dispatch = [&](const Pipeline* of, VkDescriptorSet with, const void* constants, uint32_t bytes,
                            std::array<uint32_t, 3> groups, bool barrier_before) {
    Dispatch recorded{.pipeline = of, .set = with, .push_words = bytes / 4, .groups = groups,
                      .barrier_before = barrier_before};
    std::memcpy(recorded.push.data(), constants, bytes);
    batch.add(recorded);
  };
  if (quantize_pipeline != nullptr)
    dispatch(quantize_pipeline, quantize_set, &push, kRoundingPushBytes, rounding_grid.value(), true);
  // A product right after others over the same x (or the same rounding of it) that reads
  // none of their outputs needs no barrier, and the device may run them side by side: a
  // prompt's q, k and v, or its gate and up, each too small to fill a large GPU alone.
  // After a rounding pass, or the producer that rounded x, there is a dispatch between
  // them, so the product waits.
  const auto reads_a_sibling_output = [&](const DeviceBuffer* buffer) {
    return std::find(siblings_.outputs.begin(), siblings_.outputs.end(), buffer) != siblings_.outputs.end();
  };
  // Held until the product is recorded: another thread's batch must not change the
  // siblings between this check and their update below.
  const std::lock_guard siblings_lock(siblings_mutex_);
  const bool joins_siblings = siblings_.batch == batch.serial() &&
                              siblings_.dispatches == batch.dispatches() && siblings_.x == args.x &&
                              args.y != args.x && !reads_a_sibling_output(args.x) &&
                              !reads_a_sibling_output(args.weights) && !reads_a_sibling_output(args.bias) &&
                              !reads_a_sibling_output(args.y);
  const bool first_barrier = !joins_siblings;
  if (gemv) {
    // One workgroup per `columns` output columns: n may exceed the device's dispatch width.
    const uint64_t columns_per_dispatch = uint64_t{max_groups_x} * columns;
    for (uint64_t first = 0; first < args.n; first += columns_per_dispatch) {
      LinearPushConstants part = push;
      part.first_column = static_cast<uint32_t>(first);
      const uint64_t groups = (std::min<uint64_t>(args.n - first, columns_per_dispatch) + columns - 1) / columns;
      dispatch(pipeline.value(), set.value(), &part, sizeof part, {static_cast<uint32_t>(groups), groups_y, 1},
               first == 0 && first_barrier);
    }
  } else {
    dispatch(pipeline.value(), set.value(), &push, sizeof push, {groups_x, groups_y, 1}, first_barrier);
  }
  if (round_x) {
    quantized_source_ = source;
    quantized_source_.dispatches = batch.dispatches();
  }
  if (!joins_siblings) siblings_ = {.batch = batch.serial(), .x = args.x, .outputs = {}};
  siblings_.dispatches = batch.dispatches();
  siblings_.outputs.push_back(args.y);
  return {};
}

}  // namespace ember::gpu
