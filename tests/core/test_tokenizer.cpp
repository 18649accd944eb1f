#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ember/gguf.h"
#include "ember/hf_to_gguf.h"
#include "ember/model_config.h"
#include "ember/tokenizer.h"
#include "core/tokenizer_fixtures.h"
#include "model_builder.h"
#include "test_util.h"

namespace ember {
namespace {

namespace fs = std::filesystem;
using testing::decode;
using testing::encode;
using testing::Ids;
using testing::load_tokenizer;

using testing::ScratchDir;

const fs::path kDemoTokenizer = fs::path(EMBER_TEST_DATA_DIR) / "demo-fortunes-7m" / "tokenizer.json";




Ids concat(std::initializer_list<Ids> parts) {
  Ids all;
  for (const Ids& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

TEST(DemoTokenizer, MatchesReferenceIds) {
  const Tokenizer tokenizer = load_tokenizer(kDemoTokenizer);
  EXPECT_EQ(encode(tokenizer, "The meaning of life is"), (Ids{318, 3131, 291, 687, 301}));
  EXPECT_EQ(encode(tokenizer, "A computer"), (Ids{34, 989}));
  EXPECT_EQ(encode(tokenizer, "Q: Why did the chicken"), (Ids{50, 27, 2905, 779, 265, 483, 3632}));
  EXPECT_EQ(encode(tokenizer, "A computer", true), (Ids{0, 34, 989})) << "the post-processor prepends <|begin_of_text|>";
  EXPECT_EQ(tokenizer.bos_id(), 0);
  EXPECT_EQ(tokenizer.eos_id(), 1);
}

TEST(DemoTokenizer, DecodeRoundTrips) {
  const Tokenizer tokenizer = load_tokenizer(kDemoTokenizer);
  for (std::string_view text : {"The meaning of life is", "  leading and trailing  ", "tabs\tand\r\nCRLF", "",
                                "x", "日本語のテキスト 🎉🙂 ünïcödé Ελληνικά", "a\n\n\nb", "!!!???...", "1234567890"})
    EXPECT_EQ(decode(tokenizer, encode(tokenizer, text)), text);
}

TEST(DemoTokenizer, SpecialTokenTextBecomesItsId) {
  const Tokenizer tokenizer = load_tokenizer(kDemoTokenizer);
  const Ids ids = encode(tokenizer, "<|begin_of_text|>A computer<|end_of_text|>");
  EXPECT_EQ(ids, (Ids{0, 34, 989, 1}));
  EXPECT_EQ(decode(tokenizer, ids), "<|begin_of_text|>A computer<|end_of_text|>");
  EXPECT_EQ(encode(tokenizer, "<|begin_of_text|>", true), (Ids{0, 0}));
}

TEST(DemoTokenizer, SplitsNumbersContractionsAndNewlines) {
  const Tokenizer tokenizer = load_tokenizer(kDemoTokenizer);
  EXPECT_EQ(encode(tokenizer, "1234567"), concat({encode(tokenizer, "123"), encode(tokenizer, "456"), encode(tokenizer, "7")}));
  EXPECT_EQ(encode(tokenizer, "I'm"), concat({encode(tokenizer, "I"), encode(tokenizer, "'m")}));
  EXPECT_EQ(encode(tokenizer, "DON'T"), concat({encode(tokenizer, "DON"), encode(tokenizer, "'T")}))
      << "contractions match case-insensitively";
  EXPECT_EQ(encode(tokenizer, "a\n\nb"), concat({encode(tokenizer, "a"), encode(tokenizer, "\n\n"), encode(tokenizer, "b")}));
}

TEST(DemoTokenizer, StreamingDecodeHoldsSplitCharacters) {
  const Tokenizer tokenizer = load_tokenizer(kDemoTokenizer);
  const std::string text = "clef 𝄞 here";
  const Ids ids = encode(tokenizer, text);
  TokenDecoder decoder(tokenizer);
  std::string streamed;
  int partial_tokens = 0;
  for (int32_t id : ids) {
    auto piece = decoder.next(id);
    ASSERT_TRUE(piece.ok()) << piece.status().message();
    auto bytes = tokenizer.token_bytes(id);
    ASSERT_TRUE(bytes.ok());
    if (piece.value() != bytes.value()) ++partial_tokens;
    streamed += piece.value();
    EXPECT_EQ(piece.value().find("\uFFFD"), std::string::npos) << "a piece ended inside a character";
  }
  streamed += decoder.finish();
  EXPECT_EQ(streamed, text);
  EXPECT_GT(partial_tokens, 0) << "𝄞 (4 bytes) should be split over byte tokens in a 4096-token vocabulary";

  TokenDecoder half(tokenizer);
  auto first = half.next(ids[0]);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(half.next(-1).status().code() == ErrorCode::out_of_range);
}

TEST(DemoTokenizer, RejectsInvalidUtf8AndOutOfRangeIds) {
  const Tokenizer tokenizer = load_tokenizer(kDemoTokenizer);
  const auto bad = tokenizer.encode("ab\xff" "cd", false);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("byte offset 2"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(tokenizer.encode("\xed\xa0\x80", false).ok()) << "a surrogate is not UTF-8";
  EXPECT_FALSE(tokenizer.encode("\xc0\xaf", false).ok()) << "an overlong form is not UTF-8";
  const Ids past_end{34, 4096};
  const auto decoded = tokenizer.decode(past_end);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), ErrorCode::out_of_range);
  EXPECT_FALSE(tokenizer.decode(Ids{-1}).ok());
}

TEST(DemoTokenizer, GgufKeysGiveTheSameIds) {
  const Tokenizer from_json = load_tokenizer(kDemoTokenizer);
  ModelConfig config;
  config.vocab_size = 4096;
  auto keys = tokenizer_metadata_from_json(kDemoTokenizer, config);
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::string("llama"));
  for (const auto& [key, value] : keys.value()) writer.set(key, value);
  const ScratchDir scratch;
  const fs::path file = scratch / "demo-tokenizer.gguf";
  ASSERT_TRUE(writer.write(file).ok());
  auto gguf = GgufFile::open(file);
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto from_gguf = Tokenizer::from_gguf(gguf.value());
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.status().message();
  for (std::string_view text : {"The meaning of life is", "Q: Why did the chicken", "<|begin_of_text|>x 12345\n\n",
                                "日本語 🎉 don't", "   spaces   "}) {
    EXPECT_EQ(encode(from_gguf.value(), text, true), encode(from_json, text, true)) << text;
    EXPECT_EQ(encode(from_gguf.value(), text), encode(from_json, text)) << text;
  }
}

// A SentencePiece-style BPE in the Llama 2 layout: <unk>, <s>, </s>, the 256 byte
// tokens, then pieces; the normalizer prepends "▁" and spells spaces as "▁".
fs::path write_sentencepiece_json(const ScratchDir& scratch) {
  nlohmann::json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  char name[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  const std::vector<std::string> pieces = {"\u2581", "h", "e", "l", "o", "w", "r", "d", "\u2581h", "ll", "he",
                                           "llo", "\u2581he", "\u2581hello", "\u2581w", "or", "\u2581wor", "\u2581worl", "\u2581world"};
  for (size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = static_cast<int>(259 + i);
  const nlohmann::json merges = {"\u2581 h", "l l", "h e", "ll o", "\u2581h e", "\u2581he llo", "\u2581 w", "o r",
                                 "\u2581w or", "\u2581wor l", "\u2581worl d"};
  const nlohmann::json special = {{"single_word", false}, {"lstrip", false}, {"rstrip", false}, {"normalized", false},
                                  {"special", true}};
  nlohmann::json added = nlohmann::json::array();
  for (auto [id, text] : {std::pair{0, "<unk>"}, {1, "<s>"}, {2, "</s>"}}) {
    nlohmann::json token = special;
    token["id"] = id;
    token["content"] = text;
    added.push_back(token);
  }
  const nlohmann::json root = {
      {"added_tokens", added},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", "\u2581"}},
                                                              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor", {{"type", "TemplateProcessing"},
                          {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}},
      {"model", {{"type", "BPE"}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"vocab", vocab}, {"merges", merges}}}};
  const fs::path path = scratch / "tokenizer.json";
  std::ofstream(path) << root.dump();
  return path;
}

TEST(SentencePieceTokenizer, MergesByScoreAndFallsBackToBytes) {
  const ScratchDir scratch;
  const Tokenizer tokenizer = load_tokenizer(write_sentencepiece_json(scratch));
  const int32_t hello = 259 + 13, world = 259 + 18, space = 259, h = 260, e = 261;
  EXPECT_EQ(encode(tokenizer, "hello"), (Ids{hello}));
  EXPECT_EQ(encode(tokenizer, "hello", true), (Ids{1, hello})) << "add_bos from the TemplateProcessing post-processor";
  EXPECT_EQ(encode(tokenizer, "hello world"), (Ids{hello, world}));
  // "é" is not a piece: its two UTF-8 bytes become <0xC3> <0xA9>.
  EXPECT_EQ(encode(tokenizer, "hé"), (Ids{space + 8, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(encode(tokenizer, "eh"), (Ids{space, e, h}));
  EXPECT_EQ(encode(tokenizer, "<s>hello"), (Ids{1, hello})) << "the space prefix follows an added token";
  for (std::string_view text : {"hello world", "héllo wörld 🎉", "  two  spaces", "日本"})
    EXPECT_EQ(decode(tokenizer, encode(tokenizer, text)), text);
}

TEST(SentencePieceTokenizer, LongTextIsOneWordMergedLikeItsParts) {
  const ScratchDir scratch;
  const Tokenizer tokenizer = load_tokenizer(write_sentencepiece_json(scratch));
  const int32_t hello = 259 + 13, world = 259 + 18;
  std::string text = "hello world";
  Ids expected = {hello, world};
  for (int repeat = 1; repeat < 5000; ++repeat) {
    text += " hello world";
    expected.insert(expected.end(), {hello, world});
  }
  EXPECT_EQ(encode(tokenizer, text), expected);
  EXPECT_EQ(decode(tokenizer, expected), text);
}

// fuzz_tokenizer_json found this: the vocabulary is padded to one past the largest id,
// so a single huge id asked for terabytes (tests/fuzz/regressions/ holds the input).
TEST(TokenizerRobustness, IdsPastTheVocabularyLimitAreRefusedBeforeAllocating) {
  const ScratchDir scratch;
  for (const int64_t id : {kMaxVocabSize, int64_t{57812983410}, std::numeric_limits<int64_t>::max()}) {
    SCOPED_TRACE(id);
    const nlohmann::json root = {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", id}}}, {"merges", nlohmann::json::array()}}}};
    const fs::path path = scratch / "tokenizer.json";
    std::ofstream(path) << root.dump();
    const auto tokenizer = Tokenizer::from_json_file(path);
    ASSERT_FALSE(tokenizer.ok());
    EXPECT_NE(tokenizer.status().message().find("past ember's limit"), std::string::npos) << tokenizer.status().message();
  }
}

// fuzz_tokenizer_json found this too (a CI run's 2 GiB limit): one id of 16 million,
// under the limit, padded a 1 KB file to 4 GiB of tokens. A few unnamed ids stay padding.
TEST(TokenizerRobustness, SparseIdsAreRefusedBeforePaddingAndAFewHolesArePadded) {
  const ScratchDir scratch;
  const auto load_with_largest_id = [&](int64_t id) {
    const nlohmann::json root = {{"model",
                                  {{"type", "BPE"},
                                   {"byte_fallback", true},
                                   {"vocab", {{"<unk>", 0}, {"a", 1}, {"b", id}}},
                                   {"merges", nlohmann::json::array()}}}};
    const fs::path path = scratch / "tokenizer.json";
    std::ofstream(path) << root.dump();
    return Tokenizer::from_json_file(path);
  };
  for (const int64_t id : {int64_t{16'000'000}, kMaxVocabSize - 1, int64_t{65536 + 3}}) {
    SCOPED_TRACE(id);
    const auto tokenizer = load_with_largest_id(id);
    ASSERT_FALSE(tokenizer.ok());
    EXPECT_EQ(tokenizer.status().code(), ErrorCode::corrupt_file);
    EXPECT_NE(tokenizer.status().message().find(fmt::format("a vocabulary of {} ids names at most 3 tokens", id + 1)),
              std::string::npos)
        << tokenizer.status().message();
    EXPECT_NE(tokenizer.status().message().find((scratch / "tokenizer.json").string()), std::string::npos);
  }
  const auto padded = load_with_largest_id(65536 + 2);
  ASSERT_TRUE(padded.ok()) << padded.status().message();
  EXPECT_EQ(padded->vocab_size(), 65536 + 3);
  EXPECT_EQ(padded->token_bytes(1000).value(), "[PAD1000]");
}

TEST(TokenizerRobustness, RandomBytesAndIdsNeverCrash) {
  testing::SeededRng rng;
  const Tokenizer byte_level = load_tokenizer(kDemoTokenizer);
  const ScratchDir scratch;
  const Tokenizer sentencepiece = load_tokenizer(write_sentencepiece_json(scratch));
  for (const Tokenizer* tokenizer : {&byte_level, &sentencepiece}) {
    for (int round = 0; round < 300; ++round) {
      std::string text(static_cast<size_t>(rng.integer(0, 64)), '\0');
      // Mostly ASCII and UTF-8 lead/continuation bytes, so some inputs are valid UTF-8.
      for (char& c : text) c = static_cast<char>(rng.integer(0, 3) == 0 ? rng.integer(0x80, 0xFF) : rng.integer(0, 0x7F));
      const auto ids = tokenizer->encode(text, true);
      if (ids.ok()) {
        const auto back = tokenizer->decode(ids.value());
        ASSERT_TRUE(back.ok()) << back.status().message();
      } else {
        EXPECT_NE(ids.status().message().find("byte offset"), std::string::npos) << ids.status().message();
      }
      Ids random_ids(static_cast<size_t>(rng.integer(0, 16)));
      for (int32_t& id : random_ids) id = static_cast<int32_t>(rng.integer(-3, tokenizer->vocab_size() + 3));
      const auto text_of = tokenizer->decode(random_ids);
      const bool in_range = std::all_of(random_ids.begin(), random_ids.end(),
                                        [&](int32_t id) { return id >= 0 && id < tokenizer->vocab_size(); });
      EXPECT_EQ(text_of.ok(), in_range);
    }
  }
}

}  // namespace
}  // namespace ember
