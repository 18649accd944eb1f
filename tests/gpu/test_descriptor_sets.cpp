// The descriptor sets kept for reuse (gpu/descriptor_sets.h) and the pieces a long batch
// is submitted in (gpu/command_batch.h). A set kept for a buffer that is gone must never
// be bound to the buffer that replaces it, even where the new one gets the old handle:
// the sums would then land in the old memory and the new output stay poisoned.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <vector>

#include "gpu/command_batch.h"
#include "gpu/descriptor_sets.h"
#include "gpu/row_ops.h"
#include "gpu_test_buffers.h"
#include "gpu_test_context.h"
#include "test_util.h"

namespace ember::gpu {
namespace {

using testing::mapped_buffer;
using testing::read_mapped;

constexpr uint32_t kCount = 1000;

struct Adding {
  Context& context;
  Allocator allocator;
  PipelineCache pipelines;
  RowOps ops;
  testing::SeededRng rng;
  std::vector<float> a = rng.uniform(kCount, -4.0f, 4.0f), b = rng.uniform(kCount, -4.0f, 4.0f);
  DeviceBuffer a_buffer = mapped_buffer(allocator, a), b_buffer = mapped_buffer(allocator, b);
  explicit Adding(Context& c) : context(c), allocator(c), pipelines(c), ops(pipelines) {}

  // a + b into `out` in a batch of its own; then checks every sum.
  void add_into(DescriptorSets& sets, const DeviceBuffer& out) {
    CommandBatch batch(context, sets);
    const Status recorded = ops.record_elementwise(batch, ElementwiseOp::add, a_buffer, &b_buffer, out, kCount);
    ASSERT_TRUE(recorded) << recorded.message();
    const Status ran = batch.run();
    ASSERT_TRUE(ran) << ran.message();
    const std::vector<float> sums = read_mapped<float>(out, kCount);
    for (uint32_t i = 0; i < kCount; ++i) ASSERT_EQ(sums[i], a[i] + b[i]) << "at " << i;
  }
};

TEST(DescriptorSets, TheSameBuffersGetTheKeptSetAndNewBuffersANewOne) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Adding adding(context);
  auto sets = DescriptorSets::create(context, 8);
  ASSERT_TRUE(sets) << sets.status().message();
  DescriptorSets& kept = *sets.value();
  std::optional<DeviceBuffer> out = mapped_buffer(adding.allocator, testing::poisoned(kCount));
  adding.add_into(kept, *out);
  EXPECT_EQ(kept.written(), 1u);
  EXPECT_EQ(kept.reused(), 0u);
  adding.add_into(kept, *out);
  EXPECT_EQ(kept.written(), 1u);
  EXPECT_EQ(kept.reused(), 1u);
  for (int replaced = 0; replaced < 3; ++replaced) {
    out.reset();
    out = mapped_buffer(adding.allocator, testing::poisoned(kCount));
    adding.add_into(kept, *out);
  }
  EXPECT_EQ(kept.written(), 4u);
  EXPECT_EQ(kept.reused(), 1u);
}

// A pool of 2 sets serves any number of batches over different buffers: the kept sets
// nobody uses make room.
TEST(DescriptorSets, KeptSetsMakeRoomWhenThePoolIsFull) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Adding adding(context);
  auto sets = DescriptorSets::create(context, 2);
  ASSERT_TRUE(sets) << sets.status().message();
  std::vector<DeviceBuffer> outs;
  for (int i = 0; i < 5; ++i) outs.push_back(mapped_buffer(adding.allocator, testing::poisoned(kCount)));
  for (const DeviceBuffer& out : outs) adding.add_into(*sets.value(), out);
  EXPECT_EQ(sets.value()->written(), 5u);
}

TEST(CommandBatchPieces, StartAtEightThenDoubleUpToThirtyTwo) {
  for (uint32_t start : {8u, 24u, 56u, 88u, 120u}) EXPECT_TRUE(CommandBatch::starts_piece(start)) << start;
  for (uint32_t inside : {0u, 1u, 7u, 9u, 16u, 23u, 25u, 32u, 40u, 64u, 87u}) EXPECT_FALSE(CommandBatch::starts_piece(inside)) << inside;
  EXPECT_EQ(CommandBatch::pieces_for(0), 0u);
  EXPECT_EQ(CommandBatch::pieces_for(8), 1u);
  EXPECT_EQ(CommandBatch::pieces_for(9), 2u);
  EXPECT_EQ(CommandBatch::pieces_for(24), 2u);
  EXPECT_EQ(CommandBatch::pieces_for(25), 3u);
  EXPECT_EQ(CommandBatch::pieces_for(75), 4u);
  EXPECT_EQ(CommandBatch::pieces_for(100000), Context::kMostPieces);
}

}  // namespace
}  // namespace ember::gpu
