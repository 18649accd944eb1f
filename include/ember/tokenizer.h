// Text to token ids and back, for the two kinds of BPE that llama.cpp reads:
//  byte-level BPE (GGUF tokenizer.ggml.model "gpt2": GPT-2, Llama 3, Qwen2): the text is
//   split by the pre-tokenizer regex named by tokenizer.ggml.pre, each piece's bytes are
//   spelled with GPT-2's byte↔unicode table and merged by merge rank;
//  SentencePiece-style BPE ("llama": Llama 2, TinyLlama): spaces become "▁", a "▁" is
//   prepended when add_space_prefix, merges go by score, and a character missing from
//   the vocabulary becomes its <0xNN> byte tokens.
// Added tokens (control and user-defined) are matched in the text before splitting.
//
// A tokenizer.json is read through tokenizer_metadata_from_json (hf_to_gguf.h), so the
// JSON and GGUF loaders agree by construction. Nothing here throws.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/gguf.h"
#include "ember/status.h"

namespace ember {

struct TokenizerModel;

// The largest vocabulary ember loads from a tokenizer.json: 2^24 tokens, 64 times the
// largest real one (262,144). A JSON vocabulary is padded to the model's size or to one
// past its largest id, so without a limit one id of 10^12 would ask for terabytes.
inline constexpr int64_t kMaxVocabSize = int64_t{1} << 24;

class Tokenizer {
 public:
  // Errors name the file: unreadable or corrupt JSON, an unsupported model or split regex.
  static Result<Tokenizer> from_json_file(const std::filesystem::path& path);
  // Reads the tokenizer.ggml.* keys. Errors name the file and key.
  static Result<Tokenizer> from_gguf(const GgufFile& file);
  // The same from keys already in memory; `source` names them in errors.
  static Result<Tokenizer> from_metadata(std::span<const std::pair<std::string, GgufValue>> metadata,
                                         std::string_view source);

  // Ids of `text` (UTF-8). With add_special, the BOS / EOS the file asks for are added.
  // Errors: invalid UTF-8 (naming the byte offset), a piece no token can spell.
  Result<std::vector<int32_t>> encode(std::string_view text, bool add_special) const;
  // The text of `ids`; bytes that do not form whole UTF-8 characters become U+FFFD.
  // Errors: an id outside the vocabulary.
  Result<std::string> decode(std::span<const int32_t> ids) const;

  int32_t vocab_size() const;
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  // The bytes a token stands for (a byte token's one byte; "▁" as a space).
  Result<std::string> token_bytes(int32_t id) const;

 private:
  explicit Tokenizer(std::shared_ptr<const TokenizerModel> model) : model_(std::move(model)) {}
  std::shared_ptr<const TokenizerModel> model_;
  friend class TokenDecoder;
};

// Decodes ids one at a time for streaming output: next() returns only whole UTF-8
// characters and keeps an incomplete one's bytes until the tokens that finish it arrive.
class TokenDecoder {
 public:
  explicit TokenDecoder(const Tokenizer& tokenizer) : model_(tokenizer.model_) {}

  // Errors: an id outside the vocabulary (nothing buffered is lost).
  Result<std::string> next(int32_t id);
  // Whatever is still buffered, as U+FFFD for each incomplete character.
  std::string finish();

 private:
  std::shared_ptr<const TokenizerModel> model_;
  std::string pending_;
  bool at_start_ = true;
};

}  // namespace ember
