// Where a model's nodes may run: the CPU alone, or a Vulkan device for the large fused
// linear layers (issue #6). The executor asks the Vulkan backend first; it takes a
// `linear` node when its op, dtypes and shapes suit the shaders, its weight belongs to an
// offloaded layer, and the product is large enough to repay a dispatch. Every other node
// runs on the CPU.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ember {

enum class DeviceChoice : uint8_t {
  cpu,        // never open a Vulkan device
  vulkan,     // a Vulkan device is required: loading fails with one line when there is none
  automatic,  // a Vulkan GPU when there is one; otherwise (or only a CPU implementation such
              // as lavapipe, which would run the same arithmetic slower) the CPU, with an info line
};

// "cpu", "vulkan" or "auto"; nothing for any other name.
std::optional<DeviceChoice> device_choice_from_name(std::string_view name);

// Below these a dispatch's fixed cost (descriptor update, submit, wait) outweighs the
// product itself, so the node stays on the CPU. Each is overridable per model (the options
// below) or per process (EMBER_GPU_MIN_FLOPS, EMBER_GPU_MIN_WEIGHT_BYTES); where neither
// is set, a crossover `run-model --calibrate` measured on the same device replaces both
// (ember/gpu_calibration.h).
inline constexpr uint64_t kDefaultGpuMinFlops = uint64_t{16} << 20;        // 2 · rows · k · n
inline constexpr uint64_t kDefaultGpuMinWeightBytes = uint64_t{1} << 20;  // bytes of W as stored

inline constexpr int kAllLayers = -1;

struct OffloadOptions {
  DeviceChoice device = DeviceChoice::cpu;
  // Linear layers of the first `gpu_layers` transformer layers go to the device; the
  // output projection counts as one layer more (llama.cpp's -ngl). kAllLayers: all of them.
  int gpu_layers = kAllLayers;
  std::optional<uint32_t> device_index = std::nullopt;  // unset: EMBER_VK_DEVICE, else the best device
  // Unset: the environment variable, else the default above.
  std::optional<uint64_t> min_flops = std::nullopt;
  std::optional<uint64_t> min_weight_bytes = std::nullopt;
  // Time each offloaded node's share of the device apart (NodeTiming::device per node, for
  // per-op profiles), at the cost of a timestamp after every dispatch.
  bool time_each_node = false;
};

}  // namespace ember
