// The small kernels of gpu/row_ops.h against the CPU's own kernels on random data: sizes
// that are not multiples of the 256-wide workgroups, outputs poisoned with NaN and a
// guard past their end. add and copy are exact; swiglu differs from the CPU only in exp
// (1e-6 relative); rms_norm in the order of its sum of squares (f32 pairwise against f64,
// 1e-5 relative), layer_norm likewise and in its mean, subtracted in f32 (1e-4 where
// values of 100 ± 3 make it); rope takes the CPU's own angle table, so it differs only
// where the device fuses a multiply-add (1e-6 of the values); the embedding gather gives
// the CPU's values exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cpu/elementwise.h"
#include "cpu/embedding.h"
#include "cpu/norm.h"
#include "cpu/rope.h"
#include "gpu/row_ops.h"
#include "gpu_test_buffers.h"
#include "gpu_test_context.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace ember::gpu {
namespace {

using testing::mapped_buffer;
using testing::read_mapped;

constexpr size_t kGuard = 5;

struct Gpu {
  Context& context;
  Allocator allocator;
  PipelineCache pipelines;
  std::unique_ptr<DescriptorSets> sets;
  RowOps ops;
  explicit Gpu(Context& c) : context(c), allocator(c), pipelines(c), ops(pipelines) {
    auto created = DescriptorSets::create(c, 8);
    EXPECT_TRUE(created) << created.status().message();
    if (created) sets = std::move(created.value());
  }
};

// Runs what `record` adds in a batch of its own.
template <typename Record>
void run_batch(Gpu& gpu, Record record) {
  CommandBatch batch(gpu.context, *gpu.sets);
  const Status recorded = record(batch);
  ASSERT_TRUE(recorded) << recorded.message();
  const Status ran = batch.run();
  ASSERT_TRUE(ran) << ran.message();
}

// Compares `count` outputs with the expected values and checks the guard stayed NaN.
void expect_close(const DeviceBuffer& out, const std::vector<float>& expected, double relative, double absolute) {
  const std::vector<float> actual = read_mapped<float>(out, expected.size() + kGuard);
  for (size_t i = expected.size(); i < actual.size(); ++i) ASSERT_TRUE(std::isnan(actual[i])) << "wrote past the end at " << i;
  int failures = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double tolerance = relative * std::fabs(expected[i]) + absolute;
    if (!(std::fabs(actual[i] - expected[i]) <= tolerance) && ++failures <= 5)
      ADD_FAILURE() << "element " << i << ": " << actual[i] << ", expected " << expected[i];
  }
  EXPECT_EQ(failures, 0);
}

TEST(GpuRowOps, ElementwiseAddSwigluCopy) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  testing::SeededRng rng;
  for (const uint32_t count : {1u, 257u, 70001u}) {
    SCOPED_TRACE("count " + std::to_string(count));
    const std::vector<float> a = rng.uniform(count, -8.0f, 8.0f), b = rng.uniform(count, -8.0f, 8.0f);
    const DeviceBuffer a_buffer = mapped_buffer(gpu.allocator, a), b_buffer = mapped_buffer(gpu.allocator, b);
    for (const ElementwiseOp op : {ElementwiseOp::add, ElementwiseOp::swiglu, ElementwiseOp::copy}) {
      SCOPED_TRACE("op " + std::to_string(static_cast<int>(op)));
      const DeviceBuffer out = mapped_buffer(gpu.allocator, testing::poisoned(count + kGuard));
      run_batch(gpu, [&](CommandBatch& batch) {
        return gpu.ops.record_elementwise(batch, op, a_buffer, op == ElementwiseOp::copy ? nullptr : &b_buffer, out, count);
      });
      std::vector<float> expected(count);
      if (op == ElementwiseOp::swiglu) {
        cpu::swiglu(a.data(), b.data(), expected.data(), count);
      } else {
        for (uint32_t i = 0; i < count; ++i) expected[i] = op == ElementwiseOp::add ? a[i] + b[i] : a[i];
      }
      expect_close(out, expected, op == ElementwiseOp::swiglu ? 1e-6 : 0.0, op == ElementwiseOp::swiglu ? 1e-7 : 0.0);
    }
  }
}

// A batch longer than a piece (CommandBatch::kDispatchesPerPiece) is submitted in
// pieces, and each dispatch still sees the one before it, across pieces too: a chain of
// adds, each reading the previous sum, ends on the exact total (small integers), timed
// dispatch by dispatch or not.
TEST(GpuCommandBatch, ALongBatchGoesInPiecesThatRunInOrder) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  auto sets = DescriptorSets::create(context, 128);
  ASSERT_TRUE(sets) << sets.status().message();
  testing::SeededRng rng;
  constexpr uint32_t kCount = 70001, kAdds = 2 * CommandBatch::kDispatchesPerPiece + 7;
  std::vector<float> start = rng.uniform(kCount, -8.0f, 8.0f), step = rng.uniform(kCount, -8.0f, 8.0f);
  for (float& value : start) value = std::round(value);
  for (float& value : step) value = std::round(value);
  std::vector<float> expected(kCount);
  for (uint32_t i = 0; i < kCount; ++i) expected[i] = start[i] + static_cast<float>(kAdds) * step[i];
  const DeviceBuffer step_buffer = mapped_buffer(gpu.allocator, step);
  for (const bool timed_each : {false, true}) {
    SCOPED_TRACE(timed_each ? "timed dispatch by dispatch" : "untimed");
    std::vector<float> first = start;
    first.resize(kCount + kGuard, std::nanf(""));
    const DeviceBuffer sums[2] = {mapped_buffer(gpu.allocator, first),
                                  mapped_buffer(gpu.allocator, testing::poisoned(kCount + kGuard))};
    CommandBatch batch(context, *sets.value());
    for (uint32_t i = 0; i < kAdds; ++i) {
      const Status recorded =
          gpu.ops.record_elementwise(batch, ElementwiseOp::add, sums[i % 2], &step_buffer, sums[(i + 1) % 2], kCount);
      ASSERT_TRUE(recorded) << recorded.message();
    }
    const uint64_t before = context.submissions();
    if (timed_each && context.capabilities().timestamp_valid_bits > 0) {
      auto each = batch.run_timed_each();
      ASSERT_TRUE(each) << each.status().message();
      EXPECT_EQ(each->size(), kAdds);
    } else {
      const Status ran = batch.run();
      ASSERT_TRUE(ran) << ran.message();
    }
    // 8, 16, 32 and the last 15.
    EXPECT_EQ(CommandBatch::pieces_for(kAdds), 4u);
    EXPECT_EQ(context.submissions() - before, 4u);
    expect_close(sums[kAdds % 2], expected, 0.0, 0.0);
  }
}

TEST(GpuRowOps, RmsNormMatchesTheCpu) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  testing::SeededRng rng;
  for (const uint32_t rows : {1u, 3u, 17u})
    for (const uint32_t cols : {1u, 255u, 4097u}) {
      SCOPED_TRACE("rows " + std::to_string(rows) + " cols " + std::to_string(cols));
      const std::vector<float> x = rng.uniform(size_t{rows} * cols, -3.0f, 3.0f), weight = rng.uniform(cols);
      const DeviceBuffer x_buffer = mapped_buffer(gpu.allocator, x), weight_buffer = mapped_buffer(gpu.allocator, weight);
      const DeviceBuffer y = mapped_buffer(gpu.allocator, testing::poisoned(x.size() + kGuard));
      run_batch(gpu, [&](CommandBatch& batch) {
        return gpu.ops.record_rms_norm(batch, x_buffer, weight_buffer, y, rows, cols, 1e-5f);
      });
      std::vector<float> expected(x.size());
      cpu::rms_norm(x.data(), weight.data(), expected.data(), rows, cols, 1e-5f);
      expect_close(y, expected, 1e-5, 1e-7);

      // The same norm of x + delta, with the sum stored too (exactly: one f32 add).
      const std::vector<float> delta = rng.uniform(x.size(), -3.0f, 3.0f);
      const DeviceBuffer delta_buffer = mapped_buffer(gpu.allocator, delta);
      const DeviceBuffer sum = mapped_buffer(gpu.allocator, testing::poisoned(x.size() + kGuard));
      const DeviceBuffer normed = mapped_buffer(gpu.allocator, testing::poisoned(x.size() + kGuard));
      run_batch(gpu, [&](CommandBatch& batch) {
        return gpu.ops.record_rms_norm(batch, x_buffer, weight_buffer, normed, rows, cols, 1e-5f,
                                       RowOps::ResidualAdd{.delta = &delta_buffer, .sum = &sum});
      });
      std::vector<float> expected_sum(x.size());
      for (size_t i = 0; i < x.size(); ++i) expected_sum[i] = x[i] + delta[i];
      expect_close(sum, expected_sum, 0.0, 0.0);
      cpu::rms_norm(expected_sum.data(), weight.data(), expected.data(), rows, cols, 1e-5f);
      expect_close(normed, expected, 1e-5, 1e-7);
    }
}

// Rows whose mean lies far from zero next to their spread (the centring must not cancel),
// and rows of one value (variance 0: y is the bias).
TEST(GpuRowOps, LayerNormMatchesTheCpu) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  testing::SeededRng rng;
  for (const float offset : {0.0f, 100.0f})
    for (const uint32_t rows : {1u, 3u, 17u})
      for (const uint32_t cols : {1u, 255u, 4097u}) {
        SCOPED_TRACE("offset " + std::to_string(offset) + " rows " + std::to_string(rows) + " cols " +
                     std::to_string(cols));
        std::vector<float> x = rng.uniform(size_t{rows} * cols, -3.0f, 3.0f);
        for (float& value : x) value += offset;
        const std::vector<float> weight = rng.uniform(cols), bias = rng.uniform(cols);
        const DeviceBuffer x_buffer = mapped_buffer(gpu.allocator, x),
                           weight_buffer = mapped_buffer(gpu.allocator, weight);
        const DeviceBuffer bias_buffer = mapped_buffer(gpu.allocator, bias);
        const DeviceBuffer y = mapped_buffer(gpu.allocator, testing::poisoned(x.size() + kGuard));
        run_batch(gpu, [&](CommandBatch& batch) {
          return gpu.ops.record_layer_norm(batch, x_buffer, weight_buffer, bias_buffer, y, rows, cols, 1e-5f);
        });
        std::vector<float> expected(x.size());
        cpu::layer_norm(x.data(), weight.data(), bias.data(), expected.data(), rows, cols, 1e-5f);
        expect_close(y, expected, 1e-5, offset == 0.0f ? 1e-6 : 1e-4);
      }
}

TEST(GpuRowOps, RopeMatchesTheCpuInBothStyles) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  testing::SeededRng rng;
  constexpr uint32_t kHeads = 3;
  for (const uint32_t tokens : {1u, 5u})
    for (const uint32_t head_dim : {8u, 64u})
      for (const uint32_t rotary : {head_dim, head_dim - 4})
        for (const cpu::RopeStyle style : {cpu::RopeStyle::normal, cpu::RopeStyle::neox}) {
          SCOPED_TRACE("tokens " + std::to_string(tokens) + " head_dim " + std::to_string(head_dim) + " rotary " +
                       std::to_string(rotary) + (style == cpu::RopeStyle::neox ? " neox" : " normal"));
          const std::vector<float> x = rng.uniform(size_t{tokens} * kHeads * head_dim);
          std::vector<int32_t> positions(tokens);
          for (int32_t& position : positions) position = static_cast<int32_t>(rng.integer(0, 8000));
          const cpu::RopeParams params{.style = style, .rotary_dims = rotary, .base = 10000.0f, .position_scale = 0.5f};
          std::vector<float> angles(size_t{tokens} * rotary);
          cpu::rope_angles(tokens, positions.data(), params, angles.data());
          const DeviceBuffer x_buffer = mapped_buffer(gpu.allocator, x), angle_buffer = mapped_buffer(gpu.allocator, angles);
          const DeviceBuffer y = mapped_buffer(gpu.allocator, testing::poisoned(x.size() + kGuard));
          run_batch(gpu, [&](CommandBatch& batch) {
            return gpu.ops.record_rope(batch, x_buffer, angle_buffer, y, tokens, kHeads, head_dim, rotary / 2,
                                       style == cpu::RopeStyle::neox);
          });
          std::vector<float> expected(x.size());
          cpu::rope(x.data(), expected.data(), tokens, kHeads, head_dim, positions.data(), params);
          expect_close(y, expected, 0.0, 1e-6);

          // Two tensors in one dispatch (q and k): the second has fewer heads here, so the
          // grid covers the larger and each part stops at its own end.
          constexpr uint32_t kSecondHeads = 2;
          const std::vector<float> second_x = rng.uniform(size_t{tokens} * kSecondHeads * head_dim);
          const DeviceBuffer second_x_buffer = mapped_buffer(gpu.allocator, second_x);
          const DeviceBuffer first_y = mapped_buffer(gpu.allocator, testing::poisoned(x.size() + kGuard));
          const DeviceBuffer second_y = mapped_buffer(gpu.allocator, testing::poisoned(second_x.size() + kGuard));
          run_batch(gpu, [&](CommandBatch& batch) {
            return gpu.ops.record_rope(batch, x_buffer, angle_buffer, first_y, tokens, kHeads, head_dim, rotary / 2,
                                       style == cpu::RopeStyle::neox,
                                       RowOps::SecondRope{&second_x_buffer, &second_y, kSecondHeads});
          });
          expect_close(first_y, expected, 0.0, 1e-6);
          std::vector<float> second_expected(second_x.size());
          cpu::rope(second_x.data(), second_expected.data(), tokens, kSecondHeads, head_dim, positions.data(), params);
          expect_close(second_y, second_expected, 0.0, 1e-6);
        }
}

// Rows of a table in each type (block tables in both layouts), picked by ids that repeat
// and reach both ends, against the CPU's gather bit for bit; a table row of 2048 values
// makes a grid of many groups.
TEST(GpuRowOps, EmbeddingGivesTheCpusRows) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  testing::SeededRng rng;
  const std::pair<WeightType, cpu::ElementType> types[] = {{WeightType::f32, cpu::ElementType::f32},
                                                           {WeightType::f16, cpu::ElementType::f16},
                                                           {WeightType::q8_0, cpu::ElementType::q8_0},
                                                           {WeightType::q4_0, cpu::ElementType::q4_0}};
  for (const auto& pair : types)
    for (const uint32_t cols : {96u, 2048u})
      for (const BlockLayout layout : {BlockLayout::file, BlockLayout::split}) {
        const WeightType type = pair.first;
        const cpu::ElementType cpu_type = pair.second;
        if (layout == BlockLayout::split && !is_block(type)) continue;
        SCOPED_TRACE("type " + std::to_string(static_cast<int>(type)) + ", " + std::to_string(cols) + " columns, " +
                     (layout == BlockLayout::split ? "split" : "file layout"));
        constexpr uint32_t kTableRows = 37;
        const std::vector<float> values = rng.uniform(size_t{kTableRows} * cols, -3.0f, 3.0f);
        std::vector<uint8_t> table(weight_row_bytes(type, cols) * kTableRows);
        quant::quantize_row_reference(cpu::to_dtype(cpu_type), values.data(), table.data(), int64_t{kTableRows} * cols);
        std::vector<uint8_t> stored = table;
        if (layout == BlockLayout::split)
          split_blocks(type, reinterpret_cast<const std::byte*>(table.data()), table.size() / block_bytes(type),
                       reinterpret_cast<std::byte*>(stored.data()));
        const std::vector<int32_t> ids = {36, 0, 5, 5, 17, 36, 1};
        const auto rows = static_cast<uint32_t>(ids.size());
        const DeviceBuffer table_buffer = mapped_buffer(gpu.allocator, stored);
        const DeviceBuffer ids_buffer = mapped_buffer(gpu.allocator, ids);
        const DeviceBuffer out = mapped_buffer(gpu.allocator, testing::poisoned(size_t{rows} * cols + kGuard));
        run_batch(gpu, [&](CommandBatch& batch) {
          return gpu.ops.record_embedding(batch, table_buffer, type, layout, kTableRows, ids_buffer, out, rows, cols);
        });
        std::vector<float> expected(size_t{rows} * cols);
        cpu::embedding(table.data(), cpu_type, cols, ids.data(), rows, expected.data());
        expect_close(out, expected, 0.0, 0.0);
      }
}

TEST(GpuRowOps, RejectsShortBuffersWithAMessage) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Gpu gpu(context);
  const DeviceBuffer small = mapped_buffer(gpu.allocator, std::vector<float>(4));
  const DeviceBuffer large = mapped_buffer(gpu.allocator, std::vector<float>(64));
  CommandBatch batch(gpu.context, *gpu.sets);
  Status status = gpu.ops.record_elementwise(batch, ElementwiseOp::add, large, &small, large, 16);
  EXPECT_EQ(status.kind(), ErrorKind::invalid_argument);
  EXPECT_NE(status.message().find("b buffer holds 16 bytes, 64 needed"), std::string::npos) << status.message();
  status = gpu.ops.record_rms_norm(batch, large, small, large, 2, 8, 1e-5f);
  EXPECT_NE(status.message().find("weight buffer"), std::string::npos) << status.message();
  status = gpu.ops.record_rope(batch, large, large, large, 1, 1, 8, 5, false);
  EXPECT_NE(status.message().find("5 pairs do not fit a head of 8"), std::string::npos) << status.message();
  status = gpu.ops.record_embedding(batch, small, WeightType::f32, BlockLayout::file, 2, large, large, 1, 8);
  EXPECT_NE(status.message().find("table buffer holds 16 bytes, 64 needed"), std::string::npos) << status.message();
  status = gpu.ops.record_embedding(batch, large, WeightType::q8_0, BlockLayout::file, 1, large, large, 1, 40);
  EXPECT_NE(status.message().find("multiple of 32 values, not 40"), std::string::npos) << status.message();
  // 256 bytes hold 7 q4_0 blocks, the table 2: a split table must fill its buffer.
  status = gpu.ops.record_embedding(batch, large, WeightType::q4_0, BlockLayout::split, 1, large, large, 1, 64);
  EXPECT_NE(status.message().find("split table must be of blocks and fill its buffer"), std::string::npos)
      << status.message();
  EXPECT_EQ(batch.dispatches(), 0u);
}

}  // namespace
}  // namespace ember::gpu
