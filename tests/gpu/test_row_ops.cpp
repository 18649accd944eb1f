// The small kernels of gpu/row_ops.h against the CPU's own kernels on random data: sizes
// that are not multiples of the 256-wide workgroups, outputs poisoned with NaN and a
// guard past their end. add and copy are exact; swiglu differs from the CPU only in exp
// (1e-6 relative); rms_norm in the order of its sum of squares (f32 pairwise against f64,
// 1e-5 relative); rope takes the CPU's own angle table, so it differs only where the
// device fuses a multiply-add (1e-6 of the values).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cpu/elementwise.h"
#include "cpu/norm.h"
#include "cpu/rope.h"
#include "gpu/row_ops.h"
#include "gpu_test_buffers.h"
#include "gpu_test_context.h"
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
  EXPECT_EQ(batch.dispatches(), 0u);
}

}  // namespace
}  // namespace ember::gpu
