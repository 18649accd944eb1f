// The tokenizer.json loader on arbitrary bytes; a tokenizer it accepts then encodes and
// decodes a fixed text.
#include "ember/tokenizer.h"
#include "memory_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ember::fuzz::MemoryFile file;
  auto tokenizer = ember::Tokenizer::from_json_file(file.hold(data, size));
  if (!tokenizer.ok()) return 0;
  auto ids = tokenizer->encode("Hello, world! \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 123", true);
  if (ids.ok()) (void)tokenizer->decode(ids.value());
  return 0;
}
