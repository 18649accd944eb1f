// The tables a Tokenizer works from, shared by its loader, encoder and decoder.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ember/status.h"

namespace ember {

enum class TokenizerKind { byte_level, sentencepiece };

// llama.cpp's token types, as tokenizer.ggml.token_type stores them.
enum TokenType : int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

struct PcreCodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};

struct TokenizerModel {
  TokenizerKind kind = TokenizerKind::byte_level;
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<float> scores;
  std::vector<std::string> bytes_of;  // what each token decodes to
  std::unordered_map<std::string, int32_t> id_of;  // token text to its lowest id
  std::unordered_map<std::string, int32_t> merge_rank;  // "left right" to its rank
  std::vector<int32_t> byte_token;  // SentencePiece: byte to its <0xNN> id, -1 if none
  // Added tokens matched in the text before splitting, longest first.
  std::vector<std::pair<std::string, int32_t>> added;
  bool starts_added[256] = {};
  std::unique_ptr<pcre2_code, PcreCodeDeleter> split;  // byte-level only
  // Llama 3 looks a whole word up in the vocabulary before merging (tokenizers'
  // ignore_merges); llama.cpp keys this off the pre-tokenizer, as GGUF has no flag.
  bool whole_word_first = false;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;
  std::optional<int32_t> bos, eos, unk;

  // Merged ids of repeated byte-level words; cleared when it reaches its bound.
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> word_cache;
};

// GPT-2's table: byte b is spelled as this code point in byte-level vocabularies.
char32_t byte_to_code_point(uint8_t b);
// The inverse, or nullopt for a code point no byte maps to.
std::optional<uint8_t> code_point_to_byte(char32_t code_point);

std::string utf8_encode(char32_t code_point);
// The offset of the first byte that is not part of valid UTF-8, or nullopt.
std::optional<size_t> first_invalid_utf8(std::string_view text);

Status encode_into(const TokenizerModel& model, std::string_view text, std::vector<int32_t>& ids);

}  // namespace ember
