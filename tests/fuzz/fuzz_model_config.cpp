// The config.json reader on arbitrary text.
#include <string_view>

#include "ember/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)ember::parse_model_config(std::string_view(reinterpret_cast<const char*>(data), size), "config.json");
  return 0;
}
