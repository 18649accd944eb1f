// The demo model's tokenizer encoding arbitrary bytes (valid UTF-8 or not), with and
// without the special tokens; what it encodes is decoded again.
#include <cstdlib>
#include <string_view>

#include "demo_tokenizer.h"
#include "ember/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ember::Tokenizer& tokenizer = ember::fuzz::demo_tokenizer();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const bool add_special : {false, true}) {
    auto ids = tokenizer.encode(text, add_special);
    if (!ids.ok()) continue;
    for (const int32_t id : ids.value())
      if (id < 0 || id >= tokenizer.vocab_size()) std::abort();
    if (!tokenizer.decode(ids.value()).ok()) std::abort();
  }
  return 0;
}
