#include <algorithm>
#include <cctype>
#include <fstream>
#include <limits>
#include <sstream>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/tokenizer_model.h"
#include "ember/hf_to_gguf.h"
#include "ember/model_config.h"
#include "ember/tokenizer.h"

namespace ember {

namespace {

using Metadata = std::span<const std::pair<std::string, GgufValue>>;

// The split regexes of the pre-tokenizers GGUF names (tokenizer.ggml.pre).
constexpr std::pair<std::string_view, std::string_view> kSplitRegexes[] = {
    {"llama-bpe",
     R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
    {"qwen2",
     R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
    {"gpt-2", R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"},
    {"default", R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"},
};

class MetadataReader {
 public:
  MetadataReader(Metadata metadata, std::string_view source) : metadata_(metadata), source_(source) {}

  const GgufValue* find(std::string_view key) const {
    for (const auto& [name, value] : metadata_)
      if (name == key) return &value;
    return nullptr;
  }

  Status bad(std::string_view key, std::string_view what) const {
    return {ErrorCode::corrupt_file, fmt::format("{}: {} {}", source_, key, what)};
  }

  Result<std::string> string(std::string_view key) const {
    const GgufValue* value = find(key);
    if (!value || !value->as_string()) return bad(key, "is missing or not a string");
    return *value->as_string();
  }

  Result<bool> boolean(std::string_view key, bool fallback) const {
    const GgufValue* value = find(key);
    if (!value) return fallback;
    if (!value->as_bool()) return bad(key, "is not a boolean");
    return *value->as_bool();
  }

  Result<std::optional<int32_t>> token_id(std::string_view key, size_t vocab) const {
    const GgufValue* value = find(key);
    if (!value) return std::optional<int32_t>();
    const auto id = value->as_int();
    if (!id || *id < 0 || static_cast<uint64_t>(*id) >= vocab)
      return bad(key, fmt::format("is not a token id below the vocabulary size {}", vocab));
    return std::optional<int32_t>(static_cast<int32_t>(*id));
  }

  // An array key's elements, each read by `convert` (which returns nullopt for a wrong type).
  template <typename T, typename Convert>
  Result<std::vector<T>> array(std::string_view key, Convert convert) const {
    const GgufValue* value = find(key);
    if (!value) return std::vector<T>();
    const GgufArray* list = value->as_array();
    if (!list) return bad(key, "is not an array");
    std::vector<T> out;
    out.reserve(list->values.size());
    for (const GgufValue& element : list->values) {
      std::optional<T> item = convert(element);
      if (!item) return bad(key, fmt::format("has an element of type {}", gguf_type_name(element.type())));
      out.push_back(std::move(*item));
    }
    return out;
  }

  std::string_view source() const { return source_; }

 private:
  Metadata metadata_;
  std::string_view source_;
};

std::optional<std::string> as_text(const GgufValue& v) {
  return v.as_string() ? std::optional<std::string>(*v.as_string()) : std::nullopt;
}
std::optional<int32_t> as_i32(const GgufValue& v) {
  const auto i = v.as_int();
  return i ? std::optional<int32_t>(static_cast<int32_t>(*i)) : std::nullopt;
}
std::optional<float> as_f32(const GgufValue& v) {
  const auto f = v.as_float();
  return f ? std::optional<float>(static_cast<float>(*f)) : std::nullopt;
}

std::optional<uint8_t> byte_token_value(const std::string& text) {
  if (text.size() != 6 || !text.starts_with("<0x") || text.back() != '>') return std::nullopt;
  unsigned value = 0;
  for (char c : std::string_view(text).substr(3, 2)) {
    const int digit = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                      : (c >= 'A' && c <= 'F')                    ? c - 'A' + 10
                      : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
                                                                  : -1;
    if (digit < 0) return std::nullopt;
    value = value * 16 + static_cast<unsigned>(digit);
  }
  return static_cast<uint8_t>(value);
}

// SentencePiece's "▁" back to a space (built anew: GCC 12 warns falsely on string::replace).
std::string spaces_from_metaspace(std::string_view text) {
  constexpr std::string_view kMetaspace = "\u2581";
  std::string out;
  for (size_t at = 0; at < text.size();) {
    if (text.substr(at).starts_with(kMetaspace)) {
      out.push_back(' ');
      at += kMetaspace.size();
    } else {
      out.push_back(text[at++]);
    }
  }
  return out;
}

// What a token decodes to: byte-level spelling undone, "▁" as a space, a byte token's byte.
std::string token_bytes_of(const TokenizerModel& model, size_t id) {
  const std::string& text = model.tokens[id];
  const int32_t type = model.types[id];
  if (type == control || type == user_defined) return text;
  if (model.kind == TokenizerKind::sentencepiece) {
    if (type == byte)
      if (const auto value = byte_token_value(text)) return std::string(1, static_cast<char>(*value));
    return spaces_from_metaspace(text);
  }
  std::string out;
  for (size_t at = 0; at < text.size();) {
    const auto lead = static_cast<uint8_t>(text[at]);
    const size_t length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    const std::string_view piece = std::string_view(text).substr(at, length);
    char32_t code_point = length == 1 ? lead : lead & (0x7F >> length);
    for (size_t i = 1; i < piece.size(); ++i) code_point = (code_point << 6) | (static_cast<uint8_t>(piece[i]) & 0x3F);
    if (const auto b = code_point_to_byte(code_point)) out.push_back(static_cast<char>(*b));
    else out.append(piece);
    at += length;
  }
  return out;
}

Status compile_split(TokenizerModel& model, const std::string& pre, std::string_view source) {
  const auto known = std::find_if(std::begin(kSplitRegexes), std::end(kSplitRegexes),
                                  [&](const auto& entry) { return entry.first == pre; });
  if (known == std::end(kSplitRegexes))
    return unsupported(fmt::format("{}: pre-tokenizer '{}' is not one ember knows (llama-bpe, qwen2, gpt-2)", source, pre));
  int error = 0;
  PCRE2_SIZE offset = 0;
  const std::string_view pattern = known->second;
  model.split.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                                  &error, &offset, nullptr));
  if (!model.split) return internal_error(fmt::format("pre-tokenizer '{}' regex does not compile (error {} at {})", pre, error, offset));
  // JIT is only a speed-up; the interpreter matches the same where it is unavailable.
  pcre2_jit_compile(model.split.get(), PCRE2_JIT_COMPLETE);
  model.whole_word_first = pre == "llama-bpe";
  return {};
}

Status read_tables(TokenizerModel& model, const MetadataReader& reader, const std::string& kind) {
  if (model.tokens.empty()) return reader.bad("tokenizer.ggml.tokens", "is missing or empty");
  const size_t vocab = model.tokens.size();
  if (model.types.empty()) model.types.assign(vocab, normal);
  if (model.types.size() != vocab) return reader.bad("tokenizer.ggml.token_type", "does not have one entry per token");
  if (kind == "llama") {
    if (model.scores.empty()) model.scores.assign(vocab, 0.0f);
    if (model.scores.size() != vocab) return reader.bad("tokenizer.ggml.scores", "does not have one entry per token");
    model.byte_token.assign(256, -1);
  }
  model.bytes_of.reserve(vocab);
  for (size_t id = 0; id < vocab; ++id) {
    const auto id32 = static_cast<int32_t>(id);
    model.id_of.emplace(model.tokens[id], id32);
    model.bytes_of.push_back(token_bytes_of(model, id));
    if (model.types[id] == control || model.types[id] == user_defined) {
      if (!model.tokens[id].empty()) model.added.emplace_back(model.tokens[id], id32);
    } else if (model.kind == TokenizerKind::sentencepiece && model.types[id] == byte) {
      if (const auto value = byte_token_value(model.tokens[id]); value && model.byte_token[*value] < 0)
        model.byte_token[*value] = id32;
    }
  }
  std::stable_sort(model.added.begin(), model.added.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& entry : model.added) model.starts_added[static_cast<uint8_t>(entry.first[0])] = true;
  return {};
}

}  // namespace

Result<Tokenizer> Tokenizer::from_metadata(Metadata metadata, std::string_view source) {
  try {
    const MetadataReader reader(metadata, source);
    auto kind = reader.string("tokenizer.ggml.model");
    if (!kind) return kind.status();
    auto model = std::make_shared<TokenizerModel>();
    if (kind.value() == "gpt2") model->kind = TokenizerKind::byte_level;
    else if (kind.value() == "llama") model->kind = TokenizerKind::sentencepiece;
    else return unsupported(fmt::format("{}: tokenizer model '{}' is unsupported (ember reads gpt2 and llama)", source, kind.value()));
    const bool sentencepiece = model->kind == TokenizerKind::sentencepiece;

    auto tokens = reader.array<std::string>("tokenizer.ggml.tokens", as_text);
    if (!tokens) return tokens.status();
    model->tokens = std::move(tokens.value());
    auto types = reader.array<int32_t>("tokenizer.ggml.token_type", as_i32);
    if (!types) return types.status();
    model->types = std::move(types.value());
    auto scores = reader.array<float>("tokenizer.ggml.scores", as_f32);
    if (!scores) return scores.status();
    model->scores = std::move(scores.value());
    EMBER_RETURN_IF_ERROR(read_tables(*model, reader, kind.value()));

    if (!sentencepiece) {
      auto merges = reader.array<std::string>("tokenizer.ggml.merges", as_text);
      if (!merges) return merges.status();
      model->merge_rank.reserve(merges->size());
      for (size_t rank = 0; rank < merges->size(); ++rank)
        model->merge_rank.emplace(std::move(merges.value()[rank]), static_cast<int32_t>(rank));
      const GgufValue* pre = reader.find("tokenizer.ggml.pre");
      EMBER_RETURN_IF_ERROR(compile_split(*model, pre && pre->as_string() ? *pre->as_string() : "default", source));
    }

    const size_t vocab = model->tokens.size();
    for (auto [key, slot] : {std::pair{"tokenizer.ggml.bos_token_id", &model->bos}, {"tokenizer.ggml.eos_token_id", &model->eos},
                             {"tokenizer.ggml.unknown_token_id", &model->unk}}) {
      auto id = reader.token_id(key, vocab);
      if (!id) return id.status();
      *slot = id.value();
    }
    // llama.cpp's defaults when a file leaves these out.
    for (auto [key, slot, fallback] : {std::tuple{"tokenizer.ggml.add_bos_token", &model->add_bos, sentencepiece},
                                       {"tokenizer.ggml.add_eos_token", &model->add_eos, false},
                                       {"tokenizer.ggml.add_space_prefix", &model->add_space_prefix, sentencepiece}}) {
      auto value = reader.boolean(key, fallback);
      if (!value) return value.status();
      *slot = value.value();
    }
    if ((model->add_bos && !model->bos) || (model->add_eos && !model->eos))
      return reader.bad("tokenizer.ggml.add_bos_token", "asks for a BOS/EOS token the file does not name");
    return Tokenizer(std::move(model));
  } catch (const std::bad_alloc&) {
    return out_of_memory(fmt::format("{}: out of memory while loading the tokenizer", source));
  }
}

Result<Tokenizer> Tokenizer::from_gguf(const GgufFile& file) {
  return from_metadata(file.metadata(), file.path().string());
}

Result<Tokenizer> Tokenizer::from_json_file(const std::filesystem::path& path) {
  // tokenizer_metadata_from_json pads the vocabulary to the model's size; a bare
  // tokenizer.json's size is one past its largest id.
  std::ifstream stream(path, std::ios::binary);
  if (!stream) return Status(ErrorCode::io_error, fmt::format("{}: cannot open", path.string()));
  std::ostringstream text;
  text << stream.rdbuf();
  ModelConfig config;
  try {
    const auto root = nlohmann::json::parse(text.str());
    const auto largest_id = [](const nlohmann::json& ids, auto id_of) {
      int64_t largest = -1;
      if (ids.is_object() || ids.is_array())
        for (const auto& item : ids) largest = std::max(largest, id_of(item));
      return largest;
    };
    const auto number = [](const nlohmann::json& v) { return v.is_number_integer() ? v.get<int64_t>() : -1; };
    const auto model = root.find("model");
    const auto added = root.find("added_tokens");
    // One past the largest id, saturating: tokenizer_metadata_from_json refuses sizes past kMaxVocabSize.
    const auto one_past = [](int64_t id) { return id == std::numeric_limits<int64_t>::max() ? id : id + 1; };
    if (model != root.end() && model->contains("vocab")) config.vocab_size = one_past(largest_id(model->at("vocab"), number));
    if (added != root.end())
      config.vocab_size = std::max(config.vocab_size, one_past(largest_id(*added, [&](const nlohmann::json& token) {
                                     return token.is_object() && token.contains("id") ? number(token.at("id")) : -1;
                                   })));
  } catch (const nlohmann::json::exception& error) {
    return Status(ErrorCode::corrupt_file, fmt::format("{}: {}", path.string(), error.what()));
  }
  auto keys = tokenizer_metadata_from_json(path, config);
  if (!keys) return keys.status();
  return from_metadata(keys.value(), path.string());
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_special) const {
  if (const auto bad = first_invalid_utf8(text))
    return invalid_argument(fmt::format("text to encode is not valid UTF-8 at byte offset {}", *bad));
  std::vector<int32_t> ids;
  try {
    if (add_special && model_->add_bos) ids.push_back(*model_->bos);
    EMBER_RETURN_IF_ERROR(encode_into(*model_, text, ids));
    if (add_special && model_->add_eos) ids.push_back(*model_->eos);
  } catch (const std::bad_alloc&) {
    return out_of_memory(fmt::format("out of memory encoding {} bytes of text", text.size()));
  }
  return ids;
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(model_->tokens.size()); }
std::optional<int32_t> Tokenizer::bos_id() const { return model_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return model_->eos; }

Result<std::string> Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return out_of_range(fmt::format("token id {} is outside the vocabulary of {}", id, vocab_size()));
  return model_->bytes_of[static_cast<size_t>(id)];
}

}  // namespace ember
