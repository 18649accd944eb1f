// The fused linear shaders against a double-precision CPU reference on random data, for
// every weight type x path x activation, with and without bias, on shapes that are not
// multiples of the GEMM tile (32) or the GEMV's stride (256 weights).
//
// Tolerance (the tiled and GEMV paths): |y - reference| <= 3e-5 * (sum_i |x_i w_i| + |bias|) + 1e-6. The weights
// are dequantized exactly on both sides (f16 and block scales are exact in f32); against
// block weights the reference takes x rounded to q8_0 blocks, as the CPU's int8 kernels
// and the shaders do. So the difference is f32 rounding in the sum and exp in the
// activation: ~1e-6 of that scale for these k. One weight read from the wrong place or
// nibble, or x left unrounded, costs far more.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <utility>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "ember/dtype.h"
#include "gpu/linear.h"
#include "gpu/row_ops.h"
#include "gpu_test_buffers.h"
#include "gpu_test_context.h"
#include "quant/convert.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace ember::gpu {
namespace {

using testing::mapped_buffer;
using testing::read_mapped;

DType ember_type(WeightType type) {
  switch (type) {
    case WeightType::f32: return DType::f32;
    case WeightType::f16: return DType::f16;
    case WeightType::q8_0: return DType::q8_0;
    case WeightType::q4_0: return DType::q4_0;
  }
  return DType::f32;
}

double reference_activation(Activation act, double v) {
  switch (act) {
    case Activation::none: return v;
    case Activation::relu: return v > 0 ? v : 0;
    case Activation::gelu_tanh: return 0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    case Activation::silu: return v / (1.0 + std::exp(-v));
  }
  return v;
}

struct Gpu {
  Context& context;
  Allocator allocator;
  PipelineCache pipelines;
  std::unique_ptr<FusedLinear> linear;
  explicit Gpu(Context& c) : context(c), allocator(c), pipelines(c) {
    auto created = FusedLinear::create(c, pipelines, allocator);
    EXPECT_TRUE(created) << created.status().message();
    if (created) linear = std::move(created.value());
  }
};

struct Shape {
  uint32_t rows, k, n;
};

// A cooperative-matrix tile shape and its stages; 0 lets FusedLinear choose.
struct CoopmatTile {
  uint32_t rows = 0, columns = 0, stages = 0;
};

// Runs one case and compares every output; also checks nothing is written past y.
void check_linear(Gpu& gpu, testing::SeededRng& rng, WeightType type, LinearPath path, Activation act, Shape shape,
                  bool with_bias, double relative_tolerance = 3e-5, uint32_t gemv_columns = 0, CoopmatTile tile = {},
                  BlockLayout layout = BlockLayout::file) {
  SCOPED_TRACE("rows " + std::to_string(shape.rows) + " k " + std::to_string(shape.k) + " n " + std::to_string(shape.n) +
               (with_bias ? " with bias" : " without bias") + " tile " + std::to_string(tile.rows) + " x " +
               std::to_string(tile.columns) + " in " + std::to_string(tile.stages) + " stages" +
               (layout == BlockLayout::split ? " split" : ""));
  const std::vector<float> x = rng.uniform(size_t{shape.rows} * shape.k);
  const std::vector<float> w_float = rng.uniform(size_t{shape.n} * shape.k);
  const std::vector<float> bias = rng.uniform(shape.n);
  const DType dtype = ember_type(type);
  std::vector<uint8_t> w_bytes(row_bytes(dtype, shape.k) * shape.n);
  ASSERT_EQ(w_bytes.size(), weight_row_bytes(type, shape.k) * shape.n);
  quant::quantize_row_reference(dtype, w_float.data(), w_bytes.data(), int64_t{shape.n} * shape.k);
  std::vector<float> w(w_float.size());
  quant::dequantize_row(dtype, w_bytes.data(), w.data(), int64_t{shape.n} * shape.k);
  std::vector<float> x_taken = x;
  // Every path but the cooperative-matrix GEMM (f16 rounding, within its tolerance; the
  // automatic choice for 64 rows or more of block weights where the device has it)
  // multiplies block weights by x rounded to q8_0.
  const bool blocks = is_block(type);
  const bool tensor_cores =
      path == LinearPath::cooperative_matrix ||
      (path == LinearPath::automatic && shape.rows >= 64 &&
       cooperative_matrix_shortcoming(gpu.context.capabilities(), type, shape.k).empty());
  if (blocks && !tensor_cores) {
    std::vector<uint8_t> x_blocks(row_bytes(DType::q8_0, int64_t{shape.rows} * shape.k));
    quant::quantize_row_reference(DType::q8_0, x.data(), x_blocks.data(), int64_t{shape.rows} * shape.k);
    quant::dequantize_row(DType::q8_0, x_blocks.data(), x_taken.data(), int64_t{shape.rows} * shape.k);
  }

  constexpr size_t kGuard = 7;
  const size_t outputs = size_t{shape.rows} * shape.n;
  DeviceBuffer x_buffer = mapped_buffer(gpu.allocator, x);
  std::vector<uint8_t> stored = w_bytes;
  if (layout == BlockLayout::split)
    split_blocks(type, reinterpret_cast<const std::byte*>(w_bytes.data()), w_bytes.size() / block_bytes(type),
                 reinterpret_cast<std::byte*>(stored.data()));
  DeviceBuffer w_buffer = mapped_buffer(gpu.allocator, stored);
  DeviceBuffer bias_buffer = mapped_buffer(gpu.allocator, bias);
  DeviceBuffer y_buffer = mapped_buffer(gpu.allocator, testing::poisoned(outputs + kGuard));
  const Status status = gpu.linear->run({.x = &x_buffer, .rows = shape.rows, .k = shape.k, .weights = &w_buffer,
                                         .weight_type = type, .weight_layout = layout, .n = shape.n,
                                         .bias = with_bias ? &bias_buffer : nullptr,
                                         .activation = act, .y = &y_buffer, .path = path,
                                         .gemv_columns = gemv_columns, .tile_rows = tile.rows,
                                         .tile_columns = tile.columns, .stages = tile.stages});
  ASSERT_TRUE(status) << status.message();
  const std::vector<float> y = read_mapped<float>(y_buffer, outputs + kGuard);
  for (size_t i = outputs; i < outputs + kGuard; ++i) ASSERT_TRUE(std::isnan(y[i])) << "wrote past y at " << i;
  int failures = 0;
  for (uint32_t r = 0; r < shape.rows; ++r)
    for (uint32_t c = 0; c < shape.n; ++c) {
      double sum = with_bias ? bias[c] : 0.0;
      double scale = with_bias ? std::fabs(bias[c]) : 0.0;
      for (uint32_t i = 0; i < shape.k; ++i) {
        const double product = double{x_taken[size_t{r} * shape.k + i]} * w[size_t{c} * shape.k + i];
        sum += product;
        scale += std::fabs(product);
      }
      const double expected = reference_activation(act, sum);
      const float actual = y[size_t{r} * shape.n + c];
      const double tolerance = relative_tolerance * scale + 1e-6;
      if (!(std::fabs(actual - expected) <= tolerance) && ++failures <= 5)
        ADD_FAILURE() << "y[" << r << "][" << c << "] = " << actual << ", expected " << expected << " (tolerance "
                      << tolerance << ")";
    }
  EXPECT_EQ(failures, 0);
}

using LinearCase = std::tuple<WeightType, LinearPath, Activation>;

class GpuLinear : public ::testing::TestWithParam<LinearCase> {};

TEST_P(GpuLinear, MatchesTheCpuReference) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  // Pipelines compiled once for the whole suite; destroyed before the shared context,
  // which was created first.
  static Gpu gpu(context);
  ASSERT_NE(gpu.linear, nullptr);
  // Named apart, not as structured bindings: the lambda below captures them (clang 14).
  const WeightType type = std::get<0>(GetParam());
  const LinearPath path = std::get<1>(GetParam());
  const Activation act = std::get<2>(GetParam());
  testing::SeededRng rng;
  const bool blocks = is_block(type);
  const uint32_t k = blocks ? 32 * 3 : 37;
  // Block weights in both layouts; the split one checks where every block's codes and
  // scale are found, for each row, column and block.
  for (const BlockLayout layout : {BlockLayout::file, BlockLayout::split}) {
    if (layout == BlockLayout::split && !blocks) break;
    const auto check = [&](Shape shape, bool with_bias) {
      check_linear(gpu, rng, type, path, act, shape, with_bias, 3e-5, 0, {}, layout);
    };
    for (uint32_t rows : {1u, 3u, 67u})
      for (uint32_t n : {1u, 5u, 131u}) check({rows, k, n}, (rows + n) % 2 == 0);
    // Past one 128 x 128 float GEMM tile both ways, partial tiles at both edges.
    check({133, k, 130}, true);
    // A long row: many GEMV strides (more blocks than the block GEMV's 64 threads) and
    // GEMM k-steps, a final partial one for f32/f16.
    check({2, blocks ? 32u * 131u : 1061u, 70}, true);
    check({2, blocks ? 32u * 131u : 1061u, 70}, false);
  }
}

std::string case_name(const ::testing::TestParamInfo<LinearCase>& info) {
  static const char* types[] = {"f32", "f16", "q8_0", "q4_0"};
  static const char* paths[] = {"auto", "gemv", "gemm"};
  static const char* acts[] = {"none", "relu", "gelu_tanh", "silu"};
  return std::string(types[static_cast<int>(std::get<0>(info.param))]) + "_" +
         paths[static_cast<int>(std::get<1>(info.param))] + "_" + acts[static_cast<int>(std::get<2>(info.param))];
}

INSTANTIATE_TEST_SUITE_P(AllTypesPathsActivations, GpuLinear,
                         ::testing::Combine(::testing::Values(WeightType::f32, WeightType::f16, WeightType::q8_0,
                                                              WeightType::q4_0),
                                            ::testing::Values(LinearPath::gemv, LinearPath::gemm),
                                            ::testing::Values(Activation::none, Activation::relu,
                                                              Activation::gelu_tanh, Activation::silu)),
                         case_name);

// The tensor-core GEMM rounds x and each block weight (scale times code) to f16 (2^-11
// relative) as it stages them, so its bound is 1e-3 of sum_i |x_i w_i|: twice that
// rounding plus f32 accumulation. A misplaced tile,
// fragment or lane is off by the whole product.
TEST(GpuLinearCooperativeMatrix, MatchesTheCpuReferenceWithinF16Rounding) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  const std::string shortcoming = cooperative_matrix_shortcoming(context.capabilities(), WeightType::f16, 64);
  if (!shortcoming.empty()) GTEST_SKIP() << shortcoming;
  Gpu gpu(context);
  ASSERT_NE(gpu.linear, nullptr);
  testing::SeededRng rng;
  constexpr double kF16Tolerance = 1e-3;
  const auto cooperative = [&](WeightType type, Activation act, Shape shape, bool with_bias, CoopmatTile tile) {
    check_linear(gpu, rng, type, LinearPath::cooperative_matrix, act, shape, with_bias, kF16Tolerance, 0, tile);
  };
  // Every tile shape, each with the stages the H100 and the H200 take and one with the other.
  constexpr CoopmatTile kTiles[] = {{128, 128, 2}, {128, 128, 1}, {64, 128, 2}, {32, 128, 2}, {128, 256, 1}, {64, 256, 1}};
  for (const Activation act : {Activation::none, Activation::relu, Activation::gelu_tanh, Activation::silu}) {
    SCOPED_TRACE("activation " + std::to_string(static_cast<int>(act)));
    // Each tile: one tile and a partial one, both ways; k through several 32-steps with a
    // partial last.
    for (const CoopmatTile tile : kTiles) {
      cooperative(WeightType::f16, act, {2, 8, 3}, true, tile);
      cooperative(WeightType::f16, act, {133, 200, 130}, true, tile);
      cooperative(WeightType::f16, act, {67, 1064, 259}, false, tile);
      // Block weights, one block per 32-deep step, each weight rounded to f16 as staged.
      for (const WeightType type : {WeightType::q8_0, WeightType::q4_0})
        for (const BlockLayout layout : {BlockLayout::file, BlockLayout::split}) {
          const auto blocks = [&](Shape shape, bool with_bias) {
            check_linear(gpu, rng, type, LinearPath::cooperative_matrix, act, shape, with_bias, kF16Tolerance, 0,
                         tile, layout);
          };
          blocks({2, 32, 3}, true);
          blocks({133, 224, 130}, true);
          blocks({67, 1056, 259}, false);
        }
    }
  }
  // The automatic choice takes it for more than one row of f16 weights, and for 64 rows
  // or more of block weights.
  const size_t before = gpu.pipelines.created();
  check_linear(gpu, rng, WeightType::f16, LinearPath::automatic, Activation::none, {5, 64, 7}, false, kF16Tolerance);
  check_linear(gpu, rng, WeightType::q4_0, LinearPath::automatic, Activation::none, {64, 64, 7}, false, kF16Tolerance);
  EXPECT_EQ(gpu.pipelines.created(), before) << "a pipeline other than the cooperative one was made";
}

// The pass before the tensor-core GEMM rounds x to f16 as the CPU's conversion does (to
// nearest, ties to even, infinity past f16's range, subnormals in steps of 2^-24) on any
// device, lavapipe included: the same bits as quant::f32_to_f16_row, and nothing past
// the rounded rows.
TEST(GpuLinearCooperativeMatrix, XIsRoundedToF16AsTheCpuRoundsIt) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  testing::SeededRng rng;
  constexpr uint32_t kRows = 3, kIn = 1000;
  std::vector<float> x = rng.uniform(size_t{kRows} * kIn);
  // Magnitudes from f16's subnormals to past its largest value, then exact ties.
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::ldexp(x[i], static_cast<int>(i % 44) - 26);
  const float ties[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, -2049.0f, 0x1p-25f, 3 * 0x1p-25f, 65519.0f, 65520.0f};
  std::copy(std::begin(ties), std::end(ties), x.begin());
  std::vector<uint16_t> expected(x.size());
  quant::f32_to_f16_row(x.data(), expected.data(), static_cast<int64_t>(x.size()));

  constexpr size_t kGuardWords = 5;
  DeviceBuffer x_buffer = mapped_buffer(gpu.allocator, x);
  DeviceBuffer rounded = mapped_buffer(gpu.allocator, testing::poisoned(x.size() / 2 + kGuardWords));
  auto pipeline = gpu.pipelines.get(ShaderId::round_rows_f16, {});
  ASSERT_TRUE(pipeline) << pipeline.status().message();
  auto grid = flat_grid(context, (x.size() / 8 + 255) / 256);
  ASSERT_TRUE(grid) << grid.status().message();
  auto sets = DescriptorSets::create(context, 1);
  ASSERT_TRUE(sets) << sets.status().message();
  CommandBatch batch(context, *sets.value());
  auto set = batch.descriptor_set(*pipeline.value(), {&x_buffer, &rounded});
  ASSERT_TRUE(set) << set.status().message();
  batch.add({.pipeline = pipeline.value(), .set = set.value(), .push = {kRows, kIn}, .push_words = 2,
             .groups = grid.value()});
  const Status status = batch.run();
  ASSERT_TRUE(status) << status.message();

  const std::vector<float> words = read_mapped<float>(rounded, x.size() / 2 + kGuardWords);
  std::vector<uint16_t> halves(x.size());
  std::memcpy(halves.data(), words.data(), halves.size() * sizeof(uint16_t));
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(halves[i], expected[i]) << "value " << i << " = " << x[i];
  for (size_t i = x.size() / 2; i < words.size(); ++i) ASSERT_TRUE(std::isnan(words[i])) << "wrote past x at word " << i;
}

TEST(GpuLinearCooperativeMatrix, RefusesWhatItCannotRunWithTheReason) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  DeviceBuffer x = mapped_buffer(gpu.allocator, std::vector<float>(4 * 64));
  DeviceBuffer w = mapped_buffer(gpu.allocator, std::vector<float>(8 * 64));
  DeviceBuffer y = mapped_buffer(gpu.allocator, std::vector<float>(4 * 8));
  LinearArgs args{.x = &x, .rows = 4, .k = 64, .weights = &w, .weight_type = WeightType::f32, .n = 8, .y = &y,
                  .path = LinearPath::cooperative_matrix};
  Status status = gpu.linear->run(args);
  EXPECT_EQ(status.kind(), ErrorKind::unavailable);
  EXPECT_NE(status.message().find("takes f16, q8_0 or q4_0 weights, not f32"), std::string::npos) << status.message();
  args.weight_type = WeightType::f16;
  args.k = 60;
  status = gpu.linear->run(args);
  EXPECT_NE(status.message().find("k a multiple of 8, not 60"), std::string::npos) << status.message();
  if (!context.capabilities().fp16_cooperative_matrix()) {
    args.k = 64;
    status = gpu.linear->run(args);
    EXPECT_EQ(status.kind(), ErrorKind::unavailable);
    EXPECT_NE(status.message().find("VK_NV_cooperative_matrix"), std::string::npos) << status.message();
  }
  args.weight_type = WeightType::f16;
  args.k = 64;
  args.path = LinearPath::gemm;
  args.tile_rows = 64;
  status = gpu.linear->run(args);
  EXPECT_NE(status.message().find("only the cooperative-matrix GEMM takes them"), std::string::npos)
      << status.message();
  args.tile_rows = 0;
  args.tile_columns = 256;
  status = gpu.linear->run(args);
  EXPECT_NE(status.message().find("tile columns 256: only the cooperative-matrix GEMM"), std::string::npos)
      << status.message();
  args.tile_columns = 0;
  args.stages = 2;
  status = gpu.linear->run(args);
  EXPECT_NE(status.message().find("stages 2: only the cooperative-matrix GEMM"), std::string::npos)
      << status.message();
  if (context.capabilities().fp16_cooperative_matrix()) {
    args.path = LinearPath::cooperative_matrix;
    args.stages = 3;
    status = gpu.linear->run(args);
    EXPECT_NE(status.message().find("stages 3: only the cooperative-matrix GEMM takes them, 1 or 2"),
              std::string::npos)
        << status.message();
    args.stages = 0;
    args.tile_columns = 192;
    status = gpu.linear->run(args);
    EXPECT_NE(status.message().find("128 or 256"), std::string::npos) << status.message();
    args.tile_columns = 256;
    args.tile_rows = 32;
    status = gpu.linear->run(args);
    EXPECT_NE(status.message().find("tile columns 256 need tile rows 64 or 128, not 32"), std::string::npos)
        << status.message();
  }
  EXPECT_EQ(gpu.pipelines.created(), 0u);
}

// 128-row tiles where they make 128 workgroups; otherwise 64 or 32 rows, so that a
// prompt through a 2048-wide layer (64 tiles of 128 x 128) spreads over a large GPU.
TEST(GpuLinearCooperativeMatrix, ShrinksTilesForSmallProducts) {
  EXPECT_EQ(coopmat_tile_rows(4096, 4096), 128u);
  EXPECT_EQ(coopmat_tile_rows(512, 4096), 128u);  // 4 x 32 tiles
  EXPECT_EQ(coopmat_tile_rows(512, 5632), 128u);  // 4 x 44
  EXPECT_EQ(coopmat_tile_rows(512, 2048), 64u);   // 8 x 16
  EXPECT_EQ(coopmat_tile_rows(512, 512), 32u);    // 16 x 4
  EXPECT_EQ(coopmat_tile_rows(64, 512), 32u);
  // 256 columns only where 512 such tiles or more keep the device busy.
  EXPECT_EQ(coopmat_tile_columns(4096, 4096, 128), 256u);  // 32 x 16 tiles
  EXPECT_EQ(coopmat_tile_columns(4096, 4000, 128), 256u);  // 32 x 16, the last tile partial
  EXPECT_EQ(coopmat_tile_columns(4096, 3840, 128), 128u);  // 32 x 15
  EXPECT_EQ(coopmat_tile_columns(512, 4096, 128), 128u);   // 4 x 16
  EXPECT_EQ(coopmat_tile_columns(4096, 4096, 32), 128u);   // too few rows for the wide tile
}

// y = x·Wᵀ in doubles, x rounded to q8_0 first against block weights, as the shaders take it.
std::vector<double> reference_linear(std::vector<float> x, const std::vector<uint8_t>& w_bytes, WeightType type,
                                     uint32_t rows, uint32_t k, uint32_t n) {
  std::vector<float> w(size_t{n} * k);
  quant::dequantize_row(ember_type(type), w_bytes.data(), w.data(), int64_t{n} * k);
  if (is_block(type)) {
    std::vector<uint8_t> x_blocks(row_bytes(DType::q8_0, int64_t{rows} * k));
    quant::quantize_row_reference(DType::q8_0, x.data(), x_blocks.data(), int64_t{rows} * k);
    quant::dequantize_row(DType::q8_0, x_blocks.data(), x.data(), int64_t{rows} * k);
  }
  std::vector<double> y(size_t{rows} * n, 0.0);
  for (uint32_t r = 0; r < rows; ++r)
    for (uint32_t c = 0; c < n; ++c)
      for (uint32_t i = 0; i < k; ++i) y[size_t{r} * n + c] += double{x[size_t{r} * k + i]} * w[size_t{c} * k + i];
  return y;
}

std::vector<uint8_t> random_weights(testing::SeededRng& rng, WeightType type, uint32_t k, uint32_t n) {
  const std::vector<float> values = rng.uniform(size_t{n} * k);
  std::vector<uint8_t> bytes(weight_row_bytes(type, k) * n);
  quant::quantize_row_reference(ember_type(type), values.data(), bytes.data(), int64_t{n} * k);
  return bytes;
}

// Weights of `type` for products of k inputs to each of `outs`, on the device, and a
// poisoned output buffer of `rows` rows for each.
struct Products {
  std::vector<std::vector<uint8_t>> weights;
  std::vector<DeviceBuffer> weight_buffers, outputs;
};
Products random_products(Gpu& gpu, testing::SeededRng& rng, WeightType type, uint32_t rows, uint32_t k,
                         std::span<const uint32_t> outs) {
  Products made;
  for (uint32_t n : outs) {
    made.weights.push_back(random_weights(rng, type, k, n));
    made.weight_buffers.push_back(mapped_buffer(gpu.allocator, made.weights.back()));
    made.outputs.push_back(mapped_buffer(gpu.allocator, testing::poisoned(size_t{rows} * n)));
  }
  return made;
}

// Products back to back over one x that read none of each other's outputs (a prompt's
// q, k and v) share the barrier before the first and may run side by side; a product
// that reads a sibling's output, as its x or its bias, waits behind a barrier. Each gives
// the reference.
TEST(GpuLinearBatch, SiblingProductsOverOneInputShareABarrier) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  ASSERT_NE(gpu.linear, nullptr);
  testing::SeededRng rng;
  constexpr uint32_t kRows = 5, kIn = 48;
  constexpr uint32_t kOuts[] = {40, 24, 24};
  const std::vector<float> x = rng.uniform(size_t{kRows} * kIn);
  DeviceBuffer x_buffer = mapped_buffer(gpu.allocator, x);
  auto [weights, weight_buffers, outputs] = random_products(gpu, rng, WeightType::f16, kRows, kIn, kOuts);
  // Then a product over x whose bias is the second output's first row (24 wide), and two
  // products of the first output (40 wide).
  const std::vector<uint8_t> w_next = random_weights(rng, WeightType::f16, kOuts[0], 8);
  DeviceBuffer w_next_buffer = mapped_buffer(gpu.allocator, w_next);
  DeviceBuffer y_next = mapped_buffer(gpu.allocator, testing::poisoned(size_t{kRows} * 8));
  DeviceBuffer y_next_again = mapped_buffer(gpu.allocator, testing::poisoned(size_t{kRows} * 8));
  DeviceBuffer y_biased = mapped_buffer(gpu.allocator, testing::poisoned(size_t{kRows} * kOuts[1]));
  auto sets = DescriptorSets::create(context, 16);
  ASSERT_TRUE(sets) << sets.status().message();
  const bool tensor_cores = cooperative_matrix_shortcoming(context.capabilities(), WeightType::f16, kIn).empty();
  {
    CommandBatch batch(context, *sets.value());
    for (size_t i = 0; i < weights.size(); ++i) {
      const Status status = gpu.linear->record(batch, {.x = &x_buffer, .rows = kRows, .k = kIn, .weights = &weight_buffers[i],
                                                       .weight_type = WeightType::f16, .n = kOuts[i], .y = &outputs[i]});
      ASSERT_TRUE(status) << status.message();
    }
    // On the tensor cores x is rounded to f16 first, once for the three.
    const uint32_t rounding = tensor_cores ? 1 : 0;
    EXPECT_EQ(batch.dispatches(), 3u + rounding);
    EXPECT_EQ(batch.barriers(), 1u + rounding) << "q, k and v share the first barrier";
    Status status = gpu.linear->record(batch, {.x = &x_buffer, .rows = kRows, .k = kIn, .weights = &weight_buffers[1],
                                               .weight_type = WeightType::f16, .n = kOuts[1], .bias = &outputs[1],
                                               .y = &y_biased});
    ASSERT_TRUE(status) << status.message();
    EXPECT_EQ(batch.barriers(), 2u + rounding) << "a product over the same x with a sibling's output as its bias waits";
    status = gpu.linear->record(batch, {.x = &outputs[0], .rows = kRows, .k = kOuts[0], .weights = &w_next_buffer,
                                        .weight_type = WeightType::f16, .n = 8, .y = &y_next});
    ASSERT_TRUE(status) << status.message();
    // On the tensor cores: a barrier before rounding the new x, and one after.
    EXPECT_EQ(batch.barriers(), 3u + 2 * rounding) << "a product of a sibling's output waits";
    status = gpu.linear->record(batch, {.x = &outputs[0], .rows = kRows, .k = kOuts[0], .weights = &w_next_buffer,
                                        .weight_type = WeightType::f16, .n = 8, .y = &y_next_again});
    ASSERT_TRUE(status) << status.message();
    EXPECT_EQ(batch.barriers(), 3u + 2 * rounding) << "its sibling over the same x";
    status = batch.run();
    ASSERT_TRUE(status) << status.message();
  }
  const double tolerance = tensor_cores ? 1e-2 : 1e-4;
  std::vector<std::vector<float>> values;
  for (size_t i = 0; i < weights.size(); ++i) {
    values.push_back(read_mapped<float>(outputs[i], size_t{kRows} * kOuts[i]));
    const std::vector<double> expected = reference_linear(x, weights[i], WeightType::f16, kRows, kIn, kOuts[i]);
    for (size_t j = 0; j < expected.size(); ++j)
      ASSERT_NEAR(values[i][j], expected[j], tolerance) << "output " << i << " at " << j;
  }
  const std::vector<double> expected_next = reference_linear(values[0], w_next, WeightType::f16, kRows, kOuts[0], 8);
  for (const DeviceBuffer* y : {&y_next, &y_next_again}) {
    const std::vector<float> next = read_mapped<float>(*y, size_t{kRows} * 8);
    for (size_t j = 0; j < next.size(); ++j) ASSERT_NEAR(next[j], expected_next[j], tolerance) << "next at " << j;
  }
  // The biased product: x·W1ᵀ + (the second output, read as a bias row).
  const std::vector<double> unbiased = reference_linear(x, weights[1], WeightType::f16, kRows, kIn, kOuts[1]);
  const std::vector<float> biased = read_mapped<float>(y_biased, size_t{kRows} * kOuts[1]);
  for (uint32_t r = 0; r < kRows; ++r)
    for (uint32_t c = 0; c < kOuts[1]; ++c)
      ASSERT_NEAR(biased[r * kOuts[1] + c], unbiased[r * kOuts[1] + c] + values[1][c], tolerance)
          << "biased at " << r << ", " << c;
}

// Linears recorded one after another over the same x (a layer's q, k and v; gate and up)
// round it to q8_0 once: the later ones read that copy with no pass and no barrier of
// their own, and still give the reference; one whose bias is a sibling's output waits
// for it. A q8_0 product (bytes layout) after q4_0 GEMVs (paired layout) needs its own
// rounding. The batch is timed dispatch by dispatch, as bench-gpu splits a product's time.
TEST(GpuLinearBatch, LinearsOverOneInputRoundItOnce) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  ASSERT_NE(gpu.linear, nullptr);
  testing::SeededRng rng;
  constexpr uint32_t kIn = 96;
  constexpr uint32_t kOuts[] = {40, 24, 24};
  const std::vector<float> x = rng.uniform(kIn);
  DeviceBuffer x_buffer = mapped_buffer(gpu.allocator, x);
  auto [weights, weight_buffers, outputs] = random_products(gpu, rng, WeightType::q4_0, 1, kIn, kOuts);
  const std::vector<uint8_t> w_q8 = random_weights(rng, WeightType::q8_0, kIn, 8);
  DeviceBuffer w_q8_buffer = mapped_buffer(gpu.allocator, w_q8);
  DeviceBuffer y_q8 = mapped_buffer(gpu.allocator, testing::poisoned(8));
  DeviceBuffer y_biased = mapped_buffer(gpu.allocator, testing::poisoned(kOuts[1]));
  auto sets = DescriptorSets::create(context, 16);
  ASSERT_TRUE(sets) << sets.status().message();
  {
    CommandBatch batch(context, *sets.value());
    for (size_t i = 0; i < weights.size(); ++i) {
      Status status = gpu.linear->record(batch, {.x = &x_buffer, .rows = 1, .k = kIn, .weights = &weight_buffers[i],
                                                 .weight_type = WeightType::q4_0, .n = kOuts[i], .y = &outputs[i],
                                                 .path = LinearPath::gemv});
      ASSERT_TRUE(status) << status.message();
    }
    EXPECT_EQ(batch.dispatches(), 4u);  // x rounded once, then three GEMVs
    EXPECT_EQ(batch.barriers(), 2u) << "the three GEMVs share the barrier after the rounding";
    // One more over the same rounding, whose bias is a sibling's output, waits for it.
    Status status = gpu.linear->record(batch, {.x = &x_buffer, .rows = 1, .k = kIn, .weights = &weight_buffers[1],
                                               .weight_type = WeightType::q4_0, .n = kOuts[1], .bias = &outputs[1],
                                               .y = &y_biased, .path = LinearPath::gemv});
    ASSERT_TRUE(status) << status.message();
    EXPECT_EQ(batch.dispatches(), 5u);
    EXPECT_EQ(batch.barriers(), 3u);
    status = gpu.linear->record(batch, {.x = &x_buffer, .rows = 1, .k = kIn, .weights = &w_q8_buffer,
                                        .weight_type = WeightType::q8_0, .n = 8, .y = &y_q8, .path = LinearPath::gemv});
    ASSERT_TRUE(status) << status.message();
    EXPECT_EQ(batch.dispatches(), 7u);
    if (context.capabilities().timestamp_valid_bits > 0) {
      // Timed dispatch by dispatch: one time each (a wrapped or unwritten timestamp would
      // read as years), and the same results.
      auto seconds = batch.run_timed_each();
      ASSERT_TRUE(seconds) << seconds.status().message();
      ASSERT_EQ(seconds->size(), 7u);
      for (double each : seconds.value()) {
        EXPECT_GE(each, 0.0);
        EXPECT_LT(each, 10.0);
      }
    } else {
      status = batch.run();
      ASSERT_TRUE(status) << status.message();
    }
  }
  for (size_t i = 0; i < weights.size(); ++i) {
    const std::vector<float> values = read_mapped<float>(outputs[i], kOuts[i]);
    const std::vector<double> expected = reference_linear(x, weights[i], WeightType::q4_0, 1, kIn, kOuts[i]);
    for (uint32_t j = 0; j < kOuts[i]; ++j) ASSERT_NEAR(values[j], expected[j], 1e-4) << "output " << i << " row " << j;
  }
  const std::vector<float> values = read_mapped<float>(y_q8, 8);
  const std::vector<double> expected = reference_linear(x, w_q8, WeightType::q8_0, 1, kIn, 8);
  for (uint32_t j = 0; j < 8; ++j) ASSERT_NEAR(values[j], expected[j], 1e-4) << "q8_0 row " << j;
  const std::vector<float> sibling = read_mapped<float>(outputs[1], kOuts[1]);
  const std::vector<float> biased = read_mapped<float>(y_biased, kOuts[1]);
  const std::vector<double> unbiased = reference_linear(x, weights[1], WeightType::q4_0, 1, kIn, kOuts[1]);
  for (uint32_t j = 0; j < kOuts[1]; ++j) ASSERT_NEAR(biased[j], unbiased[j] + sibling[j], 1e-4) << "biased row " << j;
}

// The op that writes a decoded token's x (its norm, residual add and norm, or swiglu) can
// leave x rounded for the block GEMVs that read it next (FusedLinear::prepare_rounded_x):
// those then record no rounding pass, one dispatch and one barrier fewer, and give
// exactly the outputs of the same batch with the pass. Where the next product would not
// read such a rounding (several rows, float weights) nothing is prepared.
TEST(GpuLinearBatch, AProducerThatRoundsXSparesTheRoundingPass) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  ASSERT_NE(gpu.linear, nullptr);
  RowOps ops(gpu.pipelines);
  testing::SeededRng rng;
  // An odd number of blocks, more than the norm rounds from one staged chunk (2048).
  constexpr uint32_t kIn = 32 * 101;
  constexpr uint32_t kOuts[] = {40, 24};
  const std::vector<float> a = rng.uniform(kIn, -3.0f, 3.0f), b = rng.uniform(kIn, -3.0f, 3.0f);
  const std::vector<float> norm_weight = rng.uniform(kIn);
  const DeviceBuffer a_buffer = mapped_buffer(gpu.allocator, a), b_buffer = mapped_buffer(gpu.allocator, b);
  const DeviceBuffer weight_buffer = mapped_buffer(gpu.allocator, norm_weight);
  auto sets = DescriptorSets::create(context, 16);
  ASSERT_TRUE(sets) << sets.status().message();
  enum class Producer { norm, residual_norm, swiglu };
  for (const WeightType type : {WeightType::q4_0, WeightType::q8_0})
    for (const Producer producer : {Producer::norm, Producer::residual_norm, Producer::swiglu}) {
      SCOPED_TRACE(std::string(type == WeightType::q4_0 ? "q4_0" : "q8_0") + " producer " +
                   std::to_string(static_cast<int>(producer)));
      auto [weights, weight_buffers, outputs] = random_products(gpu, rng, type, 1, kIn, kOuts);
      std::vector<std::vector<float>> results;  // y, then the products, with the pass and without
      for (const bool producer_rounds : {false, true}) {
        const DeviceBuffer x = mapped_buffer(gpu.allocator, testing::poisoned(kIn));
        const DeviceBuffer sum = mapped_buffer(gpu.allocator, testing::poisoned(kIn));
        for (const DeviceBuffer& out : outputs) {
          const std::vector<float> poison = testing::poisoned(out.bytes() / sizeof(float));
          std::memcpy(out.mapped(), poison.data(), poison.size() * sizeof(float));
        }
        CommandBatch batch(context, *sets.value());
        std::optional<RoundedX> rounded;
        if (producer_rounds) {
          auto prepared = gpu.linear->prepare_rounded_x(batch, x, 1, kIn, type);
          ASSERT_TRUE(prepared) << prepared.status().message();
          ASSERT_TRUE(prepared->has_value());
          rounded = prepared->value();
        }
        const Status produced =
            producer == Producer::swiglu
                ? ops.record_elementwise(batch, ElementwiseOp::swiglu, a_buffer, &b_buffer, x, kIn, rounded)
                : ops.record_rms_norm(batch, a_buffer, weight_buffer, x, 1, kIn, 1e-5f,
                                      producer == Producer::residual_norm
                                          ? std::optional(RowOps::ResidualAdd{.delta = &b_buffer, .sum = &sum})
                                          : std::nullopt,
                                      rounded);
        ASSERT_TRUE(produced) << produced.message();
        for (size_t i = 0; i < weights.size(); ++i) {
          const Status status = gpu.linear->record(batch, {.x = &x, .rows = 1, .k = kIn, .weights = &weight_buffers[i],
                                                           .weight_type = type, .n = kOuts[i], .y = &outputs[i]});
          ASSERT_TRUE(status) << status.message();
        }
        EXPECT_EQ(batch.dispatches(), producer_rounds ? 3u : 4u) << "the producer, (the rounding,) two GEMVs";
        EXPECT_EQ(batch.barriers(), producer_rounds ? 2u : 3u);
        const Status ran = batch.run();
        ASSERT_TRUE(ran) << ran.message();
        results.push_back(read_mapped<float>(x, kIn));
        for (size_t i = 0; i < weights.size(); ++i) results.push_back(read_mapped<float>(outputs[i], kOuts[i]));
      }
      const size_t per_run = results.size() / 2;
      for (size_t i = 0; i < per_run; ++i)
        EXPECT_EQ(std::memcmp(results[i].data(), results[per_run + i].data(), results[i].size() * sizeof(float)), 0)
            << (i == 0 ? "x" : "product " + std::to_string(i - 1)) << " differs with the producer's rounding";
      for (size_t i = 0; i < weights.size(); ++i) {
        const std::vector<double> expected = reference_linear(results[0], weights[i], type, 1, kIn, kOuts[i]);
        for (uint32_t j = 0; j < kOuts[i]; ++j)
          ASSERT_NEAR(results[per_run + 1 + i][j], expected[j], 1e-4) << "product " << i << " at " << j;
      }
    }

  CommandBatch batch(context, *sets.value());
  const DeviceBuffer x = mapped_buffer(gpu.allocator, testing::poisoned(2 * kIn));
  for (const auto& [rows, type] : {std::pair{2u, WeightType::q4_0}, std::pair{1u, WeightType::f16}}) {
    auto prepared = gpu.linear->prepare_rounded_x(batch, x, rows, kIn, type);
    ASSERT_TRUE(prepared) << prepared.status().message();
    EXPECT_FALSE(prepared->has_value()) << rows << " rows: that product reads no GEMV rounding";
  }
  auto prepared = gpu.linear->prepare_rounded_x(batch, x, 1, kIn, WeightType::q4_0);
  ASSERT_TRUE(prepared && prepared->has_value());
  const Status refused = ops.record_elementwise(batch, ElementwiseOp::swiglu, a_buffer, &b_buffer, x, kIn - 1, prepared->value());
  EXPECT_FALSE(refused);
  EXPECT_NE(refused.message().find("whole blocks of 32"), std::string::npos) << refused.message();
  EXPECT_EQ(batch.dispatches(), 0u);
}

// Two layers, the second reading the first's output, in one CommandBatch: one submission,
// and the second layer sees the first's result. The second needs more x scratch than the
// first, so the scratch grows inside the batch while the first still uses the old one.
TEST(GpuLinearBatch, ChainedLayersRunInOneSubmission) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  ASSERT_NE(gpu.linear, nullptr);
  testing::SeededRng rng;
  constexpr uint32_t kRows = 2, kIn = 64, kHidden = 320, kOut = 7;
  const std::vector<float> x = rng.uniform(size_t{kRows} * kIn);
  const std::vector<uint8_t> w1 = random_weights(rng, WeightType::q4_0, kIn, kHidden);
  const std::vector<uint8_t> w2 = random_weights(rng, WeightType::q8_0, kHidden, kOut);
  DeviceBuffer x_buffer = mapped_buffer(gpu.allocator, x);
  DeviceBuffer w1_buffer = mapped_buffer(gpu.allocator, w1);
  DeviceBuffer w2_buffer = mapped_buffer(gpu.allocator, w2);
  DeviceBuffer hidden = mapped_buffer(gpu.allocator, testing::poisoned(size_t{kRows} * kHidden));
  DeviceBuffer y = mapped_buffer(gpu.allocator, testing::poisoned(size_t{kRows} * kOut));
  auto sets = DescriptorSets::create(context, 8);
  ASSERT_TRUE(sets) << sets.status().message();
  const uint64_t before = context.submissions();
  {
    CommandBatch batch(context, *sets.value());
    Status status = gpu.linear->record(batch, {.x = &x_buffer, .rows = kRows, .k = kIn, .weights = &w1_buffer,
                                               .weight_type = WeightType::q4_0, .n = kHidden,
                                               .activation = Activation::silu, .y = &hidden, .path = LinearPath::gemv});
    ASSERT_TRUE(status) << status.message();
    status = gpu.linear->record(batch, {.x = &hidden, .rows = kRows, .k = kHidden, .weights = &w2_buffer,
                                        .weight_type = WeightType::q8_0, .n = kOut, .y = &y, .path = LinearPath::gemv});
    ASSERT_TRUE(status) << status.message();
    EXPECT_EQ(batch.dispatches(), 4u);  // each layer: x rounded, then the GEMV
    status = batch.run();
    ASSERT_TRUE(status) << status.message();
  }
  EXPECT_EQ(context.submissions() - before, 1u);

  const std::vector<float> hidden_values = read_mapped<float>(hidden, size_t{kRows} * kHidden);
  const std::vector<double> hidden_expected = reference_linear(x, w1, WeightType::q4_0, kRows, kIn, kHidden);
  for (size_t i = 0; i < hidden_values.size(); ++i) {
    const double v = hidden_expected[i];
    ASSERT_NEAR(hidden_values[i], v / (1.0 + std::exp(-v)), 1e-4) << "hidden " << i;
  }
  const std::vector<float> y_values = read_mapped<float>(y, size_t{kRows} * kOut);
  const std::vector<double> y_expected = reference_linear(hidden_values, w2, WeightType::q8_0, kRows, kHidden, kOut);
  for (size_t i = 0; i < y_values.size(); ++i) ASSERT_NEAR(y_values[i], y_expected[i], 1e-4) << "y " << i;
}

TEST(GpuLinearPipelines, CreatedOncePerShaderAndSpecialization) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  testing::SeededRng rng;
  EXPECT_EQ(gpu.pipelines.created(), 0u);
  check_linear(gpu, rng, WeightType::q4_0, LinearPath::gemv, Activation::silu, {1, 64, 9}, true);
  check_linear(gpu, rng, WeightType::q4_0, LinearPath::gemv, Activation::silu, {1, 96, 4}, false);
  EXPECT_EQ(gpu.pipelines.created(), 2u);  // the block GEMV and the x rounding before it
  check_linear(gpu, rng, WeightType::q4_0, LinearPath::automatic, Activation::silu, {1, 64, 9}, true);  // gemv
  EXPECT_EQ(gpu.pipelines.created(), 2u);
  // The GEMM, and the x rounding in the GEMM's layout (block weights reach the tensor
  // cores only from 64 rows on).
  check_linear(gpu, rng, WeightType::q4_0, LinearPath::automatic, Activation::silu, {4, 64, 9}, true);
  EXPECT_EQ(gpu.pipelines.created(), 4u);
  check_linear(gpu, rng, WeightType::q4_0, LinearPath::gemm, Activation::relu, {4, 64, 9}, true);
  EXPECT_EQ(gpu.pipelines.created(), 5u);
  // The q8_0 GEMV, and x rounded into its own layout (neither the GEMM's nor q4_0's).
  check_linear(gpu, rng, WeightType::q8_0, LinearPath::gemv, Activation::relu, {1, 64, 9}, true);
  EXPECT_EQ(gpu.pipelines.created(), 7u);
}

// A GEMV workgroup may take several output columns; n that is not a multiple of them
// leaves the last workgroup part empty, and every row of x pairs with every column.
TEST(GpuLinearGemv, EveryColumnCountGivesTheReference) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  testing::SeededRng rng;
  for (const WeightType type : {WeightType::f32, WeightType::f16, WeightType::q8_0, WeightType::q4_0}) {
    SCOPED_TRACE("weight type " + std::to_string(static_cast<int>(type)));
    const bool blocks = is_block(type);
    for (uint32_t columns = 1; columns <= kMaxGemvColumns; ++columns) {
      SCOPED_TRACE("columns " + std::to_string(columns));
      for (const uint32_t n : {1u, columns + 1, 3 * columns - 1, 131u})
        for (const BlockLayout layout : {BlockLayout::file, BlockLayout::split}) {
          if (layout == BlockLayout::split && !blocks) break;
          check_linear(gpu, rng, type, LinearPath::gemv, Activation::silu, {2, blocks ? 32u * 67u : 299u, n},
                       n % 2 == 0, 3e-5, columns, {}, layout);
        }
    }
  }
  // The automatic choice: several columns for block weights past 4096 outputs.
  EXPECT_EQ(gemv_columns(WeightType::q4_0, 4096), 1u);
  EXPECT_GT(gemv_columns(WeightType::q4_0, 4097), 1u);
  EXPECT_EQ(gemv_columns(WeightType::f16, 4096), 1u);
  check_linear(gpu, rng, WeightType::q4_0, LinearPath::automatic, Activation::none, {1, 64, 4102}, true);
  check_linear(gpu, rng, WeightType::f16, LinearPath::automatic, Activation::none, {1, 40, 4102}, false);
}

TEST(GpuLinearPipelines, RejectsBadShapesWithAMessage) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  DeviceBuffer x = mapped_buffer(gpu.allocator, std::vector<float>(2 * 40));
  DeviceBuffer w = mapped_buffer(gpu.allocator, std::vector<uint8_t>(5 * 40 * 4));
  DeviceBuffer y = mapped_buffer(gpu.allocator, std::vector<float>(2 * 5));
  Status status = gpu.linear->run({.x = &x, .rows = 2, .k = 40, .weights = &w, .weight_type = WeightType::q8_0,
                                   .n = 5, .y = &y});
  EXPECT_EQ(status.kind(), ErrorKind::invalid_argument);
  EXPECT_NE(status.message().find("multiple of 32"), std::string::npos) << status.message();
  status = gpu.linear->run({.x = &x, .rows = 2, .k = 40, .weights = &w, .weight_type = WeightType::f32, .n = 6, .y = &y});
  EXPECT_EQ(status.kind(), ErrorKind::invalid_argument);
  EXPECT_NE(status.message().find("weight buffer holds 800 bytes, 960 needed"), std::string::npos) << status.message();
  status = gpu.linear->run({.x = &x, .rows = 3, .k = 40, .weights = &w, .weight_type = WeightType::f32, .n = 5, .y = &y});
  EXPECT_NE(status.message().find("x buffer"), std::string::npos) << status.message();
  status = gpu.linear->run({.x = &x, .rows = 2, .k = 40, .weights = &w, .weight_type = WeightType::f32, .n = 5});
  EXPECT_EQ(status.kind(), ErrorKind::invalid_argument);
  status = gpu.linear->run({.x = &x, .rows = 2, .k = 40, .weights = &w, .weight_type = WeightType::f32, .n = 5,
                            .y = &y, .gemv_columns = kMaxGemvColumns + 1});
  EXPECT_NE(status.message().find("1 to 8 columns, not 9"), std::string::npos) << status.message();
  status = gpu.linear->run({.x = &x, .rows = 2, .k = 40, .weights = &w, .weight_type = WeightType::f32,
                            .weight_layout = BlockLayout::split, .n = 5, .y = &y});
  EXPECT_NE(status.message().find("f32 weights have no split layout"), std::string::npos) << status.message();
  // 800 bytes hold 44 q4_0 blocks; 5 rows of 32 are 5 blocks: split weights fill their buffer.
  status = gpu.linear->run({.x = &x, .rows = 2, .k = 32, .weights = &w, .weight_type = WeightType::q4_0,
                            .weight_layout = BlockLayout::split, .n = 5, .y = &y});
  EXPECT_NE(status.message().find("split weights must fill their buffer"), std::string::npos) << status.message();
  EXPECT_EQ(gpu.pipelines.created(), 0u);  // nothing reached the device
}

}  // namespace
}  // namespace ember::gpu
