// The Vulkan devices this machine offers, as `run-model --list-devices` prints them.
#pragma once

#include <string>

#include "ember/status.h"

namespace ember {

// One block of text per physical device: name, type, driver, memory heaps and types,
// subgroup size, fp16/int8 arithmetic, 16/8-bit storage, integer dot product and
// cooperative matrix support. An `unsupported` error says why there is none (a build
// without Vulkan, no loader, no device): the CPU then runs everything.
Result<std::string> describe_gpu_devices();

}  // namespace ember
