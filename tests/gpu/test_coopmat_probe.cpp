// The tensor-core ceiling probe (gpu/coopmat_probe.h) computes what it claims: every
// element of every subgroup's stored sum equals the iterations it ran, in both variants,
// so a rate bench-gpu reports from it counts products that happened. A device without
// fp16 cooperative matrices (lavapipe) is refused with ErrorKind::unavailable.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gpu/coopmat_probe.h"
#include "gpu_test_buffers.h"
#include "gpu_test_context.h"
#include "test_util.h"

namespace ember::gpu {
namespace {

struct Probing {
  Context& context;
  Allocator allocator;
  PipelineCache pipelines;
  Result<std::unique_ptr<DescriptorSets>> sets;
  explicit Probing(Context& c) : context(c), allocator(c), pipelines(c), sets(DescriptorSets::create(c, 2)) {}
};

TEST(CoopmatProbe, EverySubgroupSumsItsIterations) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Probing gpu(context);
  ASSERT_TRUE(gpu.sets) << gpu.sets.status().message();
  testing::SeededRng rng;
  // Odd counts, fresh each run; each iteration adds exactly 1 to every element.
  const auto workgroups = static_cast<uint32_t>(rng.integer(3, 22));
  const auto iterations = static_cast<uint32_t>(rng.integer(1, 300));
  for (const bool from_shared : {false, true}) {
    SCOPED_TRACE(from_shared ? "from shared memory" : "in registers");
    const CoopmatProbe probe{.workgroups = workgroups, .iterations = iterations, .from_shared = from_shared};
    constexpr size_t kGuard = 5;
    const size_t floats = probe.sum_bytes() / sizeof(float);
    const DeviceBuffer sums = testing::mapped_buffer(gpu.allocator, testing::poisoned(floats + kGuard));
    CommandBatch batch(context, *gpu.sets.value());
    const Status recorded = record_coopmat_probe(batch, gpu.pipelines, sums, probe);
    if (!context.capabilities().fp16_cooperative_matrix()) {
      EXPECT_EQ(recorded.kind(), ErrorKind::unavailable) << recorded.message();
      GTEST_SKIP() << recorded.message();
    }
    ASSERT_TRUE(recorded) << recorded.message();
    const Status ran = batch.run();
    ASSERT_TRUE(ran) << ran.message();
    const std::vector<float> actual = testing::read_mapped<float>(sums, floats + kGuard);
    for (size_t i = 0; i < floats; ++i) ASSERT_EQ(actual[i], static_cast<float>(iterations)) << "element " << i;
    for (size_t i = floats; i < actual.size(); ++i) ASSERT_TRUE(std::isnan(actual[i])) << "wrote past the end at " << i;
    EXPECT_DOUBLE_EQ(probe.flops(), static_cast<double>(workgroups) * 4 * iterations * 16 * 2 * 16 * 16 * 16);
  }
}

TEST(CoopmatProbe, RefusesEmptyProbesAndShortBuffers) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Probing gpu(context);
  ASSERT_TRUE(gpu.sets) << gpu.sets.status().message();
  const CoopmatProbe probe{.workgroups = 2, .iterations = 4};
  const DeviceBuffer short_sums = testing::mapped_buffer(gpu.allocator, std::vector<float>(probe.sum_bytes() / 4 - 1));
  CommandBatch batch(context, *gpu.sets.value());
  EXPECT_EQ(record_coopmat_probe(batch, gpu.pipelines, short_sums, probe).kind(), ErrorKind::invalid_argument);
  const DeviceBuffer sums = testing::mapped_buffer(gpu.allocator, std::vector<float>(probe.sum_bytes() / 4));
  EXPECT_EQ(record_coopmat_probe(batch, gpu.pipelines, sums, {.workgroups = 0, .iterations = 4}).kind(),
            ErrorKind::invalid_argument);
  EXPECT_EQ(record_coopmat_probe(batch, gpu.pipelines, sums, {.workgroups = 2, .iterations = 0}).kind(),
            ErrorKind::invalid_argument);
  EXPECT_EQ(batch.dispatches(), 0u);
}

}  // namespace
}  // namespace ember::gpu
