// Where a Vulkan device starts to pay for a linear node, measured rather than assumed
// (`run-model --calibrate`). One fused linear node with q4_0 weights is timed on the CPU
// and on the device at a ladder of sizes, the device's time including what routing costs
// a node between two CPU nodes: x uploaded, the dispatch waited for, y downloaded. The
// crossover is the smallest product (2·rows·k·n) from which the device won every larger
// case; it is kept in a small JSON file per user, which open_offload_backend reads for
// the device it was measured on, below an explicit option or environment variable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ember/status.h"

namespace ember {

// The crossover when the device lost even the largest case: no node is worth sending.
inline constexpr uint64_t kNeverOffload = UINT64_MAX;

struct CalibrationCase {
  int64_t rows = 0, k = 0, n = 0;
  double cpu_seconds = 0;  // medians of the timed runs
  double gpu_seconds = 0;
  uint64_t flops() const { return 2 * static_cast<uint64_t>(rows * k) * static_cast<uint64_t>(n); }
};

struct GpuCalibration {
  std::string device;  // the device's name, as --list-devices prints it
  uint64_t min_flops = kNeverOffload;
  std::vector<CalibrationCase> cases;
};

struct CalibrationOptions {
  std::optional<uint32_t> device_index = std::nullopt;  // unset: EMBER_VK_DEVICE, else the best device
  std::vector<int64_t> rows = {1, 32, 512};
  std::vector<int64_t> sizes = {512, 1024, 2048, 4096};  // k = n, multiples of 32
  int repetitions = 3;                                   // timed runs per case, after one warm-up
};

// Errors: no usable Vulkan device, a size that is not a positive multiple of 32.
Result<GpuCalibration> calibrate_gpu(const CalibrationOptions& options = {});

// The smallest flops() from which every case (and every larger one) ran faster on the
// device; kNeverOffload when the largest case did not.
uint64_t crossover_flops(std::span<const CalibrationCase> cases);

// $EMBER_CACHE_DIR/gpu-calibration.json, else $XDG_CACHE_HOME/ember/gpu-calibration.json,
// else $HOME/.cache/ember/gpu-calibration.json.
std::filesystem::path calibration_path();
// Creates the folder when missing; written atomically (ember/atomic_file.h).
Status save_calibration(const GpuCalibration& calibration, const std::filesystem::path& path);
// Nothing when the file does not exist; an error naming the file when it is not one of ours.
Result<std::optional<GpuCalibration>> load_calibration(const std::filesystem::path& path);

}  // namespace ember
