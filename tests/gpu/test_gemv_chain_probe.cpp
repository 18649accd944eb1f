// The GEMV chain probe (gpu/gemv_chain_probe.h) computes what bench-gpu times, in both
// forms: each v[p + 1] equals W[p] · v[p] as the host computes it from the device's own
// v[p] (so one phase's rounding does not carry into the next check), over poisoned
// outputs, n not a multiple of the workgroup's rows. As one dispatch, each phase must
// wait at the grid barrier for all of the one before; lavapipe does not run a dispatch's
// workgroups side by side (tests/gpu/test_grid_barrier_probe.cpp), so there that form
// runs one workgroup.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gpu/gemv_chain_probe.h"
#include "gpu_test_buffers.h"
#include "gpu_test_context.h"
#include "quant/convert.h"
#include "test_util.h"

namespace ember::gpu {
namespace {

class GemvChainProbeTest : public ::testing::TestWithParam<bool> {};

TEST_P(GemvChainProbeTest, EveryPhaseMultipliesTheOneBefore) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  Allocator allocator(context);
  PipelineCache pipelines(context);
  auto sets = DescriptorSets::create(context, 4);
  ASSERT_TRUE(sets) << sets.status().message();
  testing::SeededRng rng;
  const bool one_dispatch = GetParam();
  GemvChainProbe probe{.n = static_cast<uint32_t>(8 * rng.integer(1, 70)),
                       .phases = static_cast<uint32_t>(rng.integer(2, 6)),
                       .one_dispatch = one_dispatch,
                       .counter_base = 0xffffffffu - 3};
  const bool one_at_a_time = context.capabilities().type == VK_PHYSICAL_DEVICE_TYPE_CPU;
  probe.workgroups = one_dispatch ? (one_at_a_time ? 1 : 16) : static_cast<uint32_t>(rng.integer(1, 12));
  const uint32_t n = probe.n;
  // Entries of about 1 / sqrt(n), so that the vectors keep their size along the chain.
  const float scale = std::sqrt(3.0f / static_cast<float>(n));
  const std::vector<float> w = rng.uniform(static_cast<size_t>(probe.phases) * n * n, -scale, scale);
  std::vector<uint16_t> halves(w.size());
  quant::f32_to_f16_row(w.data(), halves.data(), static_cast<int64_t>(w.size()));
  std::vector<float> rounded(w.size());
  quant::f16_to_f32_row(halves.data(), rounded.data(), static_cast<int64_t>(w.size()));
  std::vector<float> v(static_cast<size_t>(probe.phases + 1) * n, std::numeric_limits<float>::quiet_NaN());
  const std::vector<float> first = rng.uniform(n);
  std::copy(first.begin(), first.end(), v.begin());
  const DeviceBuffer counter = testing::mapped_buffer(allocator, std::vector<uint32_t>{probe.counter_base});
  const DeviceBuffer weights = testing::mapped_buffer(allocator, halves);
  const DeviceBuffer vectors = testing::mapped_buffer(allocator, v);
  CommandBatch batch(context, *sets.value());
  ASSERT_TRUE(record_gemv_chain_probe(batch, pipelines, counter, weights, vectors, probe));
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
  const Status refused = record_gemv_chain_probe(batch, pipelines, counter, weights, vectors, probe);
  EXPECT_EQ(refused.kind(), ErrorKind::invalid_argument);
  EXPECT_NE(refused.message().find("n = 12 must be a positive multiple of 8"), std::string::npos) << refused.message();
}

INSTANTIATE_TEST_SUITE_P(Form, GemvChainProbeTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "one_dispatch" : "dispatch_per_phase";
                         });

}  // namespace
}  // namespace ember::gpu
