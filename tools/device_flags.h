// The device options run-model and bench-model share: --device cpu|vulkan|auto, -ngl N
// (llama.cpp's layer count to offload) and --gpu N (the Vulkan device, as EMBER_VK_DEVICE).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "ember/offload.h"
#include "ember/status.h"

namespace ember::tools {

struct DeviceFlags {
  std::string device = "auto";
  int gpu_layers = kAllLayers;
  std::optional<uint32_t> gpu;
};

// CLI11 takes one-letter names after a single dash only, so llama.cpp's -ngl is rewritten
// to its long form before parsing.
inline void spell_out_ngl(int argc, char** argv) {
  static char long_form[] = "--n-gpu-layers";
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "-ngl") == 0) argv[i] = long_form;
}

inline void add_device_flags(CLI::App& app, DeviceFlags& flags) {
  app.add_option("--device", flags.device, "cpu, vulkan or auto (a Vulkan GPU when there is one)");
  app.add_option("--n-gpu-layers", flags.gpu_layers,
                 "(also -ngl) layers whose linear layers the GPU runs, the output projection counting as the last "
                 "(-1: all)");
  app.add_option("--gpu", flags.gpu, "Vulkan device number, as --list-devices and EMBER_VK_DEVICE count");
}

inline Result<OffloadOptions> offload_options(const DeviceFlags& flags) {
  const auto device = device_choice_from_name(flags.device);
  if (!device) return invalid_argument(fmt::format("--device '{}': cpu, vulkan or auto", flags.device));
  if (flags.gpu_layers < kAllLayers)
    return invalid_argument(fmt::format("-ngl {}: a layer count, or {} for all", flags.gpu_layers, kAllLayers));
  return OffloadOptions{.device = *device, .gpu_layers = flags.gpu_layers, .device_index = flags.gpu};
}

}  // namespace ember::tools
