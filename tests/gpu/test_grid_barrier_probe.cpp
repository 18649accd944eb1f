// The grid barrier probe (gpu/grid_barrier_probe.h) does what bench-gpu times: every
// workgroup passes every phase's barrier once (the counter ends at base + workgroups x
// phases), and each finds the next workgroup's store of that phase behind the barrier (no
// misses), whether the waiters poll the counter by atomic adds or by loads. A dispatch with no phases leaves the counter as it was. Lavapipe does not run a
// dispatch's workgroups side by side (with 64 workgroups the count ended short and 63
// missed), so there it runs one workgroup; a GPU runs 64, far fewer than it holds at once.
#include <gtest/gtest.h>

#include <vector>

#include "gpu/grid_barrier_probe.h"
#include "gpu_test_buffers.h"
#include "gpu_test_context.h"
#include "test_util.h"

namespace ember::gpu {
namespace {

class GridBarrierProbeTest : public ::testing::TestWithParam<bool> {};

TEST_P(GridBarrierProbeTest, EveryWorkgroupPassesEveryPhaseAndSeesTheOthersStores) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Allocator allocator(context);
  PipelineCache pipelines(context);
  auto sets = DescriptorSets::create(context, 4);
  ASSERT_TRUE(sets) << sets.status().message();
  testing::SeededRng rng;
  const bool one_at_a_time = context.capabilities().type == VK_PHYSICAL_DEVICE_TYPE_CPU;
  const uint32_t workgroups = one_at_a_time ? 1 : 64;
  const auto phases = static_cast<uint32_t>(rng.integer(2, 40));
  // Near the top of the 32-bit count, so that the second dispatch wraps it.
  const uint32_t base = 0xffffffffu - workgroups * phases / 2;
  const DeviceBuffer counter = testing::mapped_buffer(allocator, std::vector<uint32_t>{base, 0});
  const DeviceBuffer slots = testing::mapped_buffer(allocator, std::vector<uint32_t>(workgroups, base));
  GridBarrierProbe probe{.workgroups = workgroups, .phases = phases, .counter_base = base, .poll_by_load = GetParam()};
  CommandBatch batch(context, *sets.value());
  ASSERT_TRUE(record_grid_barrier_probe(batch, pipelines, counter, slots, probe));
  probe.counter_base = probe.counter_after();
  ASSERT_TRUE(record_grid_barrier_probe(batch, pipelines, counter, slots, probe));
  probe.counter_base = probe.counter_after();
  probe.phases = 0;
  ASSERT_TRUE(record_grid_barrier_probe(batch, pipelines, counter, slots, probe));
  const Status ran = batch.run();
  ASSERT_TRUE(ran) << ran.message();
  const std::vector<uint32_t> after = testing::read_mapped<uint32_t>(counter, 2);
  EXPECT_EQ(after[0], probe.counter_after()) << "the arrivals after two dispatches of " << phases << " phases";
  EXPECT_EQ(after[1], 0u) << "workgroups that missed another's store behind the barrier";

  probe.workgroups = context.capabilities().max_workgroup_count[0] + 1;
  const Status refused = record_grid_barrier_probe(batch, pipelines, counter, slots, probe);
  EXPECT_EQ(refused.kind(), ErrorKind::invalid_argument);
  EXPECT_NE(refused.message().find("workgroups exceed the device's grid"), std::string::npos) << refused.message();
}

INSTANTIATE_TEST_SUITE_P(Polling, GridBarrierProbeTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "load" : "atomic_add"; });

}  // namespace
}  // namespace ember::gpu
