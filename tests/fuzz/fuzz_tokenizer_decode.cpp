// The demo model's tokenizer decoding arbitrary id sequences, whole and one id at a time
// as streaming output does.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "demo_tokenizer.h"
#include "ember/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ember::Tokenizer& tokenizer = ember::fuzz::demo_tokenizer();
  std::vector<int32_t> ids(size / sizeof(int32_t));
  if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * sizeof(int32_t));
  (void)tokenizer.decode(ids);
  ember::TokenDecoder decoder(tokenizer);
  for (const int32_t id : ids) (void)decoder.next(id);
  (void)decoder.finish();
  return 0;
}
