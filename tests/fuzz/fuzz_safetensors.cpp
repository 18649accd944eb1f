// The safetensors reader on arbitrary bytes: the header length, the JSON header and the
// data offsets; every tensor of a file it accepts is then viewed or copied.
#include <cstdlib>

#include "ember/safetensors.h"
#include "memory_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ember::fuzz::MemoryFile file;
  auto safetensors = ember::SafetensorsFile::open(file.hold(data, size));
  if (!safetensors.ok()) return 0;
  for (const ember::SafetensorsTensorInfo& info : safetensors->tensors()) {
    auto tensor = safetensors->tensor(info.name);
    if (tensor.ok() && tensor->payload_bytes() != info.end - info.begin) std::abort();
  }
  return 0;
}
