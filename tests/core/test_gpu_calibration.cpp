// The calibration's arithmetic and file, and the order in which thresholds are chosen:
// option, environment, this device's calibration, default. (The measurement itself runs
// on a device: tests/gpu/test_gpu_calibration_device.cpp.)
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "core/offload.h"
#include "ember/gpu_calibration.h"

namespace ember {
namespace {

namespace fs = std::filesystem;

// A case of 2·rows·k·n = 2·size³ FLOPs (rows = k = n = size) that the device won or lost.
CalibrationCase square(int64_t size, bool device_won) {
  return {size, size, size, device_won ? 2.0 : 1.0, device_won ? 1.0 : 2.0};
}

TEST(GpuCalibration, CrossoverIsWhereTheDeviceStartsWinningForGood) {
  // Won at 64, lost at 96, won from 128 up: the crossover is 128's, not 64's.
  const CalibrationCase mixed[] = {square(160, true), square(32, false), square(64, true), square(96, false),
                                   square(128, true)};
  EXPECT_EQ(crossover_flops(mixed), square(128, true).flops());
  const CalibrationCase all_won[] = {square(64, true), square(32, true)};
  EXPECT_EQ(crossover_flops(all_won), square(32, true).flops());
  const CalibrationCase largest_lost[] = {square(32, true), square(64, false)};
  EXPECT_EQ(crossover_flops(largest_lost), kNeverOffload);
  EXPECT_EQ(crossover_flops({}), kNeverOffload);
  // Two shapes of one size: the device must win both for that size to count.
  const CalibrationCase tied[] = {square(64, true), {1, 128, 128, 1.0, 2.0}, {128, 1, 128, 2.0, 1.0}};
  ASSERT_EQ(tied[1].flops(), tied[2].flops());
  EXPECT_EQ(crossover_flops(tied), square(64, true).flops());
  const CalibrationCase tied_won[] = {square(64, true), {1, 128, 128, 2.0, 1.0}, {128, 1, 128, 2.0, 1.0}};
  EXPECT_EQ(crossover_flops(tied_won), tied_won[1].flops());
}

// A fresh folder as EMBER_CACHE_DIR for one test (the previous value restored after it),
// and the GPU threshold variables unset.
class CalibrationFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = fs::temp_directory_path() / ("ember-calibration-" + std::to_string(::getpid()) + "-" +
                                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(folder_);
    fs::create_directories(folder_);
    if (const char* previous = std::getenv("EMBER_CACHE_DIR")) previous_cache_dir_ = previous;
    ::setenv("EMBER_CACHE_DIR", folder_.c_str(), 1);
    ::unsetenv("EMBER_GPU_MIN_FLOPS");
    ::unsetenv("EMBER_GPU_MIN_WEIGHT_BYTES");
  }
  void TearDown() override {
    if (previous_cache_dir_) ::setenv("EMBER_CACHE_DIR", previous_cache_dir_->c_str(), 1);
    else ::unsetenv("EMBER_CACHE_DIR");
    ::unsetenv("EMBER_GPU_MIN_FLOPS");
    fs::remove_all(folder_);
  }
  fs::path folder_;
  std::optional<std::string> previous_cache_dir_;
};

TEST_F(CalibrationFileTest, RoundTripsAndNamesBadFiles) {
  const fs::path path = calibration_path();
  EXPECT_EQ(path, folder_ / "gpu-calibration.json");
  auto missing = load_calibration(path);
  ASSERT_TRUE(missing) << missing.status().message();
  EXPECT_FALSE(missing.value().has_value());

  const GpuCalibration saved{"Some GPU", 123456789, {{1, 64, 96, 0.25, 0.5}, {32, 64, 96, 1.5, 0.75}}};
  ASSERT_TRUE(save_calibration(saved, folder_ / "nested" / "calibration.json").ok());
  auto loaded = load_calibration(folder_ / "nested" / "calibration.json");
  ASSERT_TRUE(loaded && loaded.value()) << loaded.status().message();
  EXPECT_EQ(loaded.value()->device, "Some GPU");
  EXPECT_EQ(loaded.value()->min_flops, 123456789u);
  ASSERT_EQ(loaded.value()->cases.size(), 2u);
  EXPECT_EQ(loaded.value()->cases[1].rows, 32);
  EXPECT_EQ(loaded.value()->cases[1].n, 96);
  EXPECT_DOUBLE_EQ(loaded.value()->cases[1].gpu_seconds, 0.75);
  EXPECT_FALSE(fs::exists(folder_ / "nested" / "calibration.json.tmp"));

  for (const char* text : {"not json", "[]", R"({"version":2,"device":"x","min_flops":1,"cases":[]})",
                           R"({"version":1,"device":"x","min_flops":-1,"cases":[]})",
                           R"({"version":1,"device":"x","min_flops":1,"cases":[{"rows":0,"k":1,"n":1,"cpu_seconds":1,"gpu_seconds":1}]})"}) {
    SCOPED_TRACE(text);
    std::ofstream(path) << text;
    auto bad = load_calibration(path);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.status().message().find(path.string()), std::string::npos) << bad.status().message();
    EXPECT_NE(bad.status().message().find("run-model --calibrate"), std::string::npos) << bad.status().message();
  }
}

TEST_F(CalibrationFileTest, ThresholdsComeFromOptionThenEnvironmentThenCalibrationThenDefault) {
  auto defaults = offload_thresholds({}, "GPU A");
  ASSERT_TRUE(defaults) << defaults.status().message();
  EXPECT_EQ(defaults->min_flops, kDefaultGpuMinFlops);
  EXPECT_EQ(defaults->min_weight_bytes, kDefaultGpuMinWeightBytes);

  ASSERT_TRUE(save_calibration({"GPU A", 5000000, {}}, calibration_path()).ok());
  auto calibrated = offload_thresholds({}, "GPU A");
  ASSERT_TRUE(calibrated);
  EXPECT_EQ(calibrated->min_flops, 5000000u);
  EXPECT_EQ(calibrated->min_weight_bytes, 0u);  // the measured crossover decides alone
  auto other_device = offload_thresholds({}, "GPU B");
  ASSERT_TRUE(other_device);
  EXPECT_EQ(other_device->min_flops, kDefaultGpuMinFlops);

  ::setenv("EMBER_GPU_MIN_FLOPS", "77", 1);
  auto environment = offload_thresholds({}, "GPU A");
  ASSERT_TRUE(environment);
  EXPECT_EQ(environment->min_flops, 77u);
  OffloadOptions options;
  options.min_flops = 9;
  auto option = offload_thresholds(options, "GPU A");
  ASSERT_TRUE(option);
  EXPECT_EQ(option->min_flops, 9u);
  ::setenv("EMBER_GPU_MIN_FLOPS", "lots", 1);
  auto bad_environment = offload_thresholds({}, "GPU A");
  ASSERT_FALSE(bad_environment);
  EXPECT_NE(bad_environment.status().message().find("EMBER_GPU_MIN_FLOPS='lots'"), std::string::npos);
  ::unsetenv("EMBER_GPU_MIN_FLOPS");

  // A damaged cache is not an error: the defaults apply.
  std::ofstream(calibration_path()) << "{";
  auto damaged = offload_thresholds({}, "GPU A");
  ASSERT_TRUE(damaged) << damaged.status().message();
  EXPECT_EQ(damaged->min_flops, kDefaultGpuMinFlops);
}

TEST(GpuCalibration, RefusesSizesTheShadersCannotTake) {
  for (const CalibrationOptions& options : {CalibrationOptions{.sizes = {48}}, CalibrationOptions{.rows = {0}},
                                            CalibrationOptions{.repetitions = 0}}) {
    auto result = calibrate_gpu(options);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.status().code(), ErrorCode::invalid_argument) << result.status().message();
  }
}

}  // namespace
}  // namespace ember
