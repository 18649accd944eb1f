// The demo model's tokenizer, loaded once per fuzzing process: the encode and decode
// targets fuzz the text and the ids, not the loading (fuzz_tokenizer_json does that).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "ember/tokenizer.h"

namespace ember::fuzz {

inline const Tokenizer& demo_tokenizer() {
  static const Tokenizer tokenizer = [] {
    auto loaded = Tokenizer::from_json_file(EMBER_DEMO_TOKENIZER);
    if (!loaded.ok()) {
      std::fprintf(stderr, "%s\n", loaded.status().message().c_str());
      std::abort();
    }
    return std::move(loaded.value());
  }();
  return tokenizer;
}

}  // namespace ember::fuzz
