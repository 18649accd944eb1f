// run-model --calibrate's measurement on a real device (lavapipe will do), on sizes small
// enough for a test: every case timed on both sides, and the crossover kept is the one
// its cases imply.
#include <gtest/gtest.h>

#include "ember/gpu_calibration.h"
#include "gpu_test_context.h"

namespace ember {
namespace {

TEST(GpuCalibrationOnDevice, TimesEveryCaseOnBothSides) {
  EMBER_GPU_CONTEXT_OR_SKIP(context);
  auto calibration = calibrate_gpu({.rows = {1, 3}, .sizes = {32, 96}, .repetitions = 2});
  ASSERT_TRUE(calibration) << calibration.status().message();
  EXPECT_EQ(calibration->device, context.capabilities().name);
  ASSERT_EQ(calibration->cases.size(), 4u);
  for (const CalibrationCase& c : calibration->cases) {
    EXPECT_TRUE(c.rows == 1 || c.rows == 3);
    EXPECT_TRUE(c.k == 32 || c.k == 96);
    EXPECT_EQ(c.k, c.n);
    EXPECT_GT(c.cpu_seconds, 0.0);
    EXPECT_GT(c.gpu_seconds, 0.0);
  }
  EXPECT_EQ(calibration->min_flops, crossover_flops(calibration->cases));
}

}  // namespace
}  // namespace ember
