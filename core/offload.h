// The backend a model's OffloadOptions ask for, in front of the CPU in its executor.
// Internal to core/.
#pragma once

#include <memory>

#include "core/model_weights.h"
#include "ember/backend.h"
#include "ember/offload.h"
#include "ember/status.h"

namespace ember {

// The Vulkan backend for the offloaded layers of `weights`, or null when the CPU runs
// everything (device cpu, or auto without a usable GPU, which it logs at info level).
// Errors: device vulkan without a usable device, a bad layer count or threshold.
Result<std::shared_ptr<Backend>> open_offload_backend(const OffloadOptions& options, const ModelWeights& weights);

}  // namespace ember
