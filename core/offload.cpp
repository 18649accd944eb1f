#include "core/offload.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "core/log.h"
#include "ember/gpu_calibration.h"
#if EMBER_HAVE_VULKAN
#include "core/vulkan_backend.h"
#endif

namespace ember {
namespace {

// The option when set, else the environment variable, else nothing.
Result<std::optional<uint64_t>> chosen_threshold(const std::optional<uint64_t>& option, const char* variable) {
  if (option) return option;
  const char* text = std::getenv(variable);
  if (text == nullptr) return std::optional<uint64_t>();
  const std::string_view value(text);
  uint64_t parsed = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
  if (error != std::errc() || end != value.data() + value.size() || value.empty())
    return invalid_argument(fmt::format("{}='{}': a whole number", variable, value));
  return std::optional<uint64_t>(parsed);
}

// The crossover `run-model --calibrate` measured on this device, when it did.
std::optional<uint64_t> calibrated_min_flops(std::string_view device_name) {
  const auto path = calibration_path();
  auto loaded = load_calibration(path);
  if (!loaded) {
    EMBER_LOG(warn, "{}; the default GPU thresholds apply", loaded.status().message());
    return std::nullopt;
  }
  if (!loaded.value() || loaded.value()->device != device_name) return std::nullopt;
  return loaded.value()->min_flops;
}

#if EMBER_HAVE_VULKAN
// The weight buffers of the linear layers in the first `layers` layers, the output
// projection counting as the layer after the last.
std::unordered_set<const Buffer*> offloaded_weights(const ModelWeights& weights, int layers) {
  const auto layer_count = static_cast<int64_t>(weights.layers.size());
  const int64_t offloaded = layers == kAllLayers ? layer_count + 1 : layers;
  std::unordered_set<const Buffer*> buffers;
  for (int64_t i = 0; i < std::min(offloaded, layer_count); ++i) {
    const LayerWeights& layer = weights.layers[static_cast<size_t>(i)];
    for (const Tensor* matrix : {&layer.wq, &layer.wk, &layer.wv, &layer.wo, &layer.w_gate, &layer.w_up, &layer.w_down})
      if (matrix->defined()) buffers.insert(matrix->buffer().get());
  }
  if (offloaded > layer_count && weights.output.defined()) buffers.insert(weights.output.buffer().get());
  return buffers;
}

// The embedding tables whose rows feed the first layer, when it is offloaded: gathering
// them on the device keeps a token's whole pass there.
std::unordered_set<const Buffer*> offloaded_tables(const ModelWeights& weights, int layers) {
  std::unordered_set<const Buffer*> buffers;
  if (layers == 0) return buffers;
  for (const Tensor* table : {&weights.token_embd, &weights.position_embd})
    if (table->defined()) buffers.insert(table->buffer().get());
  return buffers;
}
#endif

}  // namespace

std::optional<DeviceChoice> device_choice_from_name(std::string_view name) {
  if (name == "cpu") return DeviceChoice::cpu;
  if (name == "vulkan") return DeviceChoice::vulkan;
  if (name == "auto") return DeviceChoice::automatic;
  return std::nullopt;
}

Result<OffloadThresholds> offload_thresholds(const OffloadOptions& options, std::string_view device_name) {
  auto min_flops = chosen_threshold(options.min_flops, "EMBER_GPU_MIN_FLOPS");
  if (!min_flops) return min_flops.status();
  auto min_weight_bytes = chosen_threshold(options.min_weight_bytes, "EMBER_GPU_MIN_WEIGHT_BYTES");
  if (!min_weight_bytes) return min_weight_bytes.status();
  OffloadThresholds thresholds;
  if (!min_flops.value() || !min_weight_bytes.value()) {
    if (const auto calibrated = calibrated_min_flops(device_name)) {
      thresholds = {*calibrated, 0};
      EMBER_LOG(info, "{}: linear nodes of at least {} FLOPs go to it (measured by run-model --calibrate, {})",
                device_name, *calibrated == kNeverOffload ? std::string("(never)") : std::to_string(*calibrated),
                calibration_path().string());
    }
  }
  thresholds.min_flops = min_flops.value().value_or(thresholds.min_flops);
  thresholds.min_weight_bytes = min_weight_bytes.value().value_or(thresholds.min_weight_bytes);
  return thresholds;
}

Result<std::shared_ptr<Backend>> open_offload_backend(const OffloadOptions& options, const ModelWeights& weights) {
  if (options.device == DeviceChoice::cpu) return std::shared_ptr<Backend>();
  if (options.gpu_layers < kAllLayers)
    return invalid_argument(fmt::format("GPU layers {}: 0 or more (or {} for all)", options.gpu_layers, kAllLayers));
  // Bad environment values are reported whether or not a device turns up.
  if (auto chosen = chosen_threshold(options.min_flops, "EMBER_GPU_MIN_FLOPS"); !chosen) return chosen.status();
  if (auto chosen = chosen_threshold(options.min_weight_bytes, "EMBER_GPU_MIN_WEIGHT_BYTES"); !chosen)
    return chosen.status();
#if EMBER_HAVE_VULKAN
  auto device = VulkanDevice::open({.device_index = options.device_index});
  if (!device) {
    if (options.device == DeviceChoice::vulkan)
      return unsupported(fmt::format("device vulkan: no usable Vulkan device ({})", device.status().message()));
    EMBER_LOG(info, "device auto: no usable Vulkan device ({}); the CPU runs every node", device.status().message());
    return std::shared_ptr<Backend>();
  }
  const gpu::DeviceCapabilities& caps = device.value()->context().capabilities();
  if (options.device == DeviceChoice::automatic && !options.device_index && caps.type == VK_PHYSICAL_DEVICE_TYPE_CPU) {
    EMBER_LOG(info, "device auto: {} is a CPU implementation of Vulkan; the CPU backend runs every node", caps.name);
    return std::shared_ptr<Backend>();
  }
  EMBER_LOG(info, "device {}: {} takes the large linear layers", options.device == DeviceChoice::vulkan ? "vulkan" : "auto",
            caps.name);
  auto thresholds = offload_thresholds(options, caps.name);
  if (!thresholds) return thresholds.status();
  VulkanRouting routing{thresholds->min_flops, thresholds->min_weight_bytes, offloaded_weights(weights, options.gpu_layers),
                        offloaded_tables(weights, options.gpu_layers)};
  auto backend = std::make_shared<VulkanBackend>(std::move(device.value()), std::move(routing));
  backend->set_time_each_node(options.time_each_node);
  return std::shared_ptr<Backend>(std::move(backend));
#else
  (void)weights;
  if (options.device == DeviceChoice::vulkan)
    return unsupported(
        "device vulkan: no usable Vulkan device (this build of ember has no Vulkan module: configured without Vulkan "
        "or glslc)");
  EMBER_LOG(info, "device auto: this build has no Vulkan module; the CPU runs every node");
  return std::shared_ptr<Backend>();
#endif
}

}  // namespace ember
