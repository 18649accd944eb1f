// The GGUF reader on arbitrary bytes: header, metadata, tensor table, data bounds; a file
// it accepts goes on to every tensor view, the model config and the tokenizer built from it.
#include <cstdlib>

#include "ember/gguf.h"
#include "ember/model_config.h"
#include "ember/tokenizer.h"
#include "memory_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ember::fuzz::MemoryFile file;
  auto gguf = ember::GgufFile::open(file.hold(data, size));
  if (!gguf.ok()) return 0;
  for (const ember::GgufTensorInfo& info : gguf->tensors()) {
    auto tensor = gguf->tensor(info.name);
    // An accepted tensor's view must cover exactly the bytes the table promised.
    if (tensor.ok() && tensor->payload_bytes() != info.bytes) std::abort();
  }
  (void)ember::model_config_from_gguf(gguf.value());
  (void)ember::Tokenizer::from_gguf(gguf.value());
  return 0;
}
