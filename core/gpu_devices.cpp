#include "ember/gpu_devices.h"

#if EMBER_HAVE_VULKAN
#include "gpu/context.h"
#endif

namespace ember {

Result<std::string> describe_gpu_devices() {
#if EMBER_HAVE_VULKAN
  auto devices = gpu::Context::list_devices();
  if (!devices) return unsupported(devices.status().message());
  std::string text;
  for (const gpu::DeviceCapabilities& device : devices.value()) text += gpu::describe(device);
  return text;
#else
  return unsupported("this build of ember has no Vulkan module (configured without Vulkan or glslc)");
#endif
}

}  // namespace ember
