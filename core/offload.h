// The backend a model's OffloadOptions ask for, in front of the CPU in its executor.
// Internal to core/.
#pragma once

#include <memory>
#include <string_view>

#include "core/model_weights.h"
#include "ember/backend.h"
#include "ember/offload.h"
#include "ember/status.h"

namespace ember {

struct OffloadThresholds {
  uint64_t min_flops = kDefaultGpuMinFlops;
  uint64_t min_weight_bytes = kDefaultGpuMinWeightBytes;
};

// For each threshold: the option when set, else its environment variable, else what
// `run-model --calibrate` measured for this device (ember/gpu_calibration.h; a calibrated
// crossover replaces the weight-size rule too, since it was measured), else the default.
// Errors: an environment variable that is not a whole number. An unreadable calibration
// file is a warning, not an error: it is a cache.
Result<OffloadThresholds> offload_thresholds(const OffloadOptions& options, std::string_view device_name);

// The Vulkan backend for the offloaded layers of `weights`, or null when the CPU runs
// everything (device cpu, or auto without a usable GPU, which it logs at info level).
// Errors: device vulkan without a usable device, a bad layer count or threshold.
Result<std::shared_ptr<Backend>> open_offload_backend(const OffloadOptions& options, const ModelWeights& weights);

}  // namespace ember
