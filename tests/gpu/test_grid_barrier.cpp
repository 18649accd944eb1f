// The two probes of grid_barrier.glsl's barrier across one dispatch's
// workgroups do what bench-gpu times (gpu/grid_barrier_probe.h,
// gpu/gemv_chain_probe.h):
// - every workgroup passes every phase's barrier once (the counter ends at base
// +
//   workgroups x phases, wrapping past 2^32), and each finds the next
//   workgroup's store of that phase behind the barrier (no misses); a dispatch
//   with no phases leaves the counter as it was;
// - each v[p + 1] of the GEMV chain equals W[p] · v[p] as the host computes it
// from the
//   device's own v[p] (so one phase's rounding does not carry into the next
//   check), over poisoned outputs, n not a multiple of the workgroup's rows, as
//   one dispatch or one per phase.
// Lavapipe does not run a dispatch's workgroups side by side (with 64
// workgroups the count ended short and 63 missed), so there a barrier runs one
// workgroup; a GPU runs 16 or 64, far fewer than it holds at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gpu/gemv_chain_probe.h"
#include "gpu/grid_barrier_probe.h"
#include "gpu_test_buffers.h"
#include "gpu_test_context.h"
#include "quant/convert.h"
#include "test_util.h"

namespace ember::gpu {
namespace {

class GridBarrier : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string missing;
    context_ = testing::shared_gpu_context(&missing);
    if (context_ == nullptr) GTEST_SKIP() << "no Vulkan device: " << missing;
    allocator_.emplace(*context_);
    pipelines_.emplace(*context_);
    auto sets = DescriptorSets::create(*context_, 4);
    ASSERT_TRUE(sets) << sets.status().message();
    sets_ = std::move(sets.value());
  }
  // The workgroups that may wait for each other: one where the device runs them one by one.
  uint32_t side_by_side(uint32_t wanted) const {
    return context_->capabilities().type == VK_PHYSICAL_DEVICE_TYPE_CPU ? 1 : wanted;
  }
  // Runs `probe` over random weights and checks every phase's product.
  void expect_gemv_chain(GemvChainProbe probe) {
    const uint32_t n = probe.n;
    // Entries of about 1 / sqrt(n), so that the vectors keep their size along the chain.
    const float scale = std::sqrt(3.0f / static_cast<float>(n));
    const std::vector<float> w = rng_.uniform(static_cast<size_t>(probe.phases) * n * n, -scale, scale);
    std::vector<uint16_t> halves(w.size());
    quant::f32_to_f16_row(w.data(), halves.data(), static_cast<int64_t>(w.size()));
    std::vector<float> rounded(w.size());
    quant::f16_to_f32_row(halves.data(), rounded.data(), static_cast<int64_t>(w.size()));
    std::vector<float> v(static_cast<size_t>(probe.phases + 1) * n, std::numeric_limits<float>::quiet_NaN());
    const std::vector<float> first = rng_.uniform(n);
    std::copy(first.begin(), first.end(), v.begin());
    const DeviceBuffer counter = testing::mapped_buffer(*allocator_, std::vector<uint32_t>{probe.counter_base});
    const DeviceBuffer weights = testing::mapped_buffer(*allocator_, halves);
    const DeviceBuffer vectors = testing::mapped_buffer(*allocator_, v);
    CommandBatch batch(*context_, *sets_);
    ASSERT_TRUE(record_gemv_chain_probe(batch, *pipelines_, counter, weights, vectors, probe));
    const Status ran = batch.run();
    ASSERT_TRUE(ran) << ran.message();

    const std::vector<float> out = testing::read_mapped<float>(vectors, v.size());
    EXPECT_EQ(testing::read_mapped<uint32_t>(counter, 1)[0], probe.counter_after());
    for (uint32_t p = 0; p < probe.phases; ++p) {
      const float* x = out.data() + static_cast<size_t>(p) * n;
      for (uint32_t row = 0; row < n; ++row) {
        double expected = 0, magnitude = 0;
        for (uint32_t col = 0; col < n; ++col) {
          const double product = static_cast<double>(rounded[(static_cast<size_t>(p) * n + row) * n + col]) * x[col];
          expected += product;
          magnitude += std::abs(product);
        }
        const float got = out[static_cast<size_t>(p + 1) * n + row];
        ASSERT_NEAR(got, expected, 1e-5 * magnitude + 1e-7)
            << "phase " << p << ", row " << row << " of " << n << ", " << probe.workgroups << " workgroups";
      }
    }

    probe.n = 12;
    const Status refused = record_gemv_chain_probe(batch, *pipelines_, counter, weights, vectors, probe);
    EXPECT_EQ(refused.kind(), ErrorKind::invalid_argument);
    EXPECT_NE(refused.message().find("n = 12 must be a positive multiple of 8"), std::string::npos)
        << refused.message();
  }

  Context* context_ = nullptr;
  std::optional<Allocator> allocator_;
  std::optional<PipelineCache> pipelines_;
  std::unique_ptr<DescriptorSets> sets_;
  testing::SeededRng rng_;
};

TEST_F(GridBarrier, EveryWorkgroupPassesEveryPhaseAndSeesTheOthersStores) {
  const uint32_t workgroups = side_by_side(64);
  const auto phases = static_cast<uint32_t>(rng_.integer(2, 40));
  // Near the top of the 32-bit count, so that the second dispatch wraps it.
  const uint32_t base = 0xffffffffu - workgroups * phases / 2;
  const DeviceBuffer counter = testing::mapped_buffer(*allocator_, std::vector<uint32_t>{base, 0});
  const DeviceBuffer slots = testing::mapped_buffer(*allocator_, std::vector<uint32_t>(workgroups, base));
  GridBarrierProbe probe{.workgroups = workgroups, .phases = phases, .counter_base = base};
  CommandBatch batch(*context_, *sets_);
  ASSERT_TRUE(record_grid_barrier_probe(batch, *pipelines_, counter, slots, probe));
  probe.counter_base = probe.counter_after();
  ASSERT_TRUE(record_grid_barrier_probe(batch, *pipelines_, counter, slots, probe));
  probe.counter_base = probe.counter_after();
  probe.phases = 0;
  ASSERT_TRUE(record_grid_barrier_probe(batch, *pipelines_, counter, slots, probe));
  const Status ran = batch.run();
  ASSERT_TRUE(ran) << ran.message();
  const std::vector<uint32_t> after = testing::read_mapped<uint32_t>(counter, 2);
  EXPECT_EQ(after[0], probe.counter_after()) << "the arrivals after two dispatches of " << phases << " phases";
  EXPECT_EQ(after[1], 0u) << "workgroups that missed another's store behind the barrier";

  probe.workgroups = context_->capabilities().max_workgroup_count[0] + 1;
  const Status refused = record_grid_barrier_probe(batch, *pipelines_, counter, slots, probe);
  EXPECT_EQ(refused.kind(), ErrorKind::invalid_argument);
  EXPECT_NE(refused.message().find("workgroups exceed the device's grid"), std::string::npos) << refused.message();
}

TEST_F(GridBarrier, GemvChainAsOneDispatchMultipliesThePhaseBefore) {
  expect_gemv_chain({.n = static_cast<uint32_t>(8 * rng_.integer(1, 70)),
                     .phases = static_cast<uint32_t>(rng_.integer(2, 6)),
                     .workgroups = side_by_side(16),
                     .one_dispatch = true,
                     .counter_base = 0xffffffffu - 3});
}

TEST_F(GridBarrier, GemvChainAsADispatchPerPhaseMultipliesThePhaseBefore) {
  expect_gemv_chain({.n = static_cast<uint32_t>(8 * rng_.integer(1, 70)),
                     .phases = static_cast<uint32_t>(rng_.integer(2, 6)),
                     .workgroups = static_cast<uint32_t>(rng_.integer(1, 12)),
                     .one_dispatch = false});
}

}  // namespace
}  // namespace ember::gpu
