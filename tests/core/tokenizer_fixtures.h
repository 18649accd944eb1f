// Helpers shared by the tokenizer suites: load a tokenizer.json and encode/decode with
// any error reported as a test failure.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "ember/tokenizer.h"

namespace ember::testing {

using Ids = std::vector<int32_t>;

inline Tokenizer load_tokenizer(const std::filesystem::path& path) {
  auto tokenizer = Tokenizer::from_json_file(path);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  return std::move(tokenizer).value();
}

inline Ids encode(const Tokenizer& tokenizer, std::string_view text, bool add_special = false) {
  auto ids = tokenizer.encode(text, add_special);
  EXPECT_TRUE(ids.ok()) << ids.status().message();
  return ids.ok() ? ids.value() : Ids{};
}

inline std::string decode(const Tokenizer& tokenizer, const Ids& ids) {
  auto text = tokenizer.decode(ids);
  EXPECT_TRUE(text.ok()) << text.status().message();
  return text.ok() ? text.value() : std::string();
}

}  // namespace ember::testing
