#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ember/hf_to_gguf.h"
#include "ember/tokenizer.h"

namespace ember {

namespace {

using Json = nlohmann::json;

// llama.cpp's token types.
enum TokenType : int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

// The split regexes of the pre-tokenizers llama.cpp implements, as tokenizer.json
// spells them (after JSON unescaping), and llama.cpp's name for each.
constexpr std::pair<std::string_view, std::string_view> kKnownSplitRegexes[] = {
    {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
     "llama-bpe"},
    {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
     "qwen2"},
    {R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", "gpt-2"},
};

constexpr size_t kMostPaddingOfASmallVocabulary = size_t{1} << 16;

constexpr std::string_view kBosNames[] = {"<|begin_of_text|>", "<s>", "<|startoftext|>"};
constexpr std::string_view kEosNames[] = {"<|end_of_text|>", "</s>", "<|endoftext|>"};

// A component and, for a "Sequence", the components inside it (one level, as
// tokenizers nests them).
std::vector<const Json*> components(const Json& root, std::string_view key, std::string_view list_key) {
  std::vector<const Json*> found;
  const auto it = root.find(key);
  if (it == root.end() || !it->is_object()) return found;
  found.push_back(&*it);
  const auto inner = it->find(list_key);
  if (inner != it->end() && inner->is_array())
    for (const Json& item : *inner)
      if (item.is_object()) found.push_back(&item);
  return found;
}

bool has_type(const Json& component, std::string_view type) {
  const auto it = component.find("type");
  return it != component.end() && it->is_string() && it->get_ref<const std::string&>() == type;
}

bool is_byte_token(const std::string& text) {
  return text.size() == 6 && text.starts_with("<0x") && text.back() == '>' &&
         std::all_of(text.begin() + 3, text.begin() + 5, [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

class TokenizerReader {
 public:
  TokenizerReader(const Json& root, const std::filesystem::path& path, const ModelConfig& config)
      : root_(root), source_(path.string()), config_(config) {}

  Result<std::vector<std::pair<std::string, GgufValue>>> read() {
    const auto model = root_.find("model");
    if (model == root_.end() || !model->is_object()) return corrupt("has no model object");
    const auto type = model->find("type");
    if (type != model->end() && !(type->is_string() && type->get_ref<const std::string&>() == "BPE"))
      return Status(ErrorCode::unsupported, fmt::format("{}: tokenizer model {} is unsupported (ember reads BPE)", source_, type->dump()));
    bool byte_level = false;
    for (const Json* component : components(root_, "pre_tokenizer", "pretokenizers"))
      byte_level = byte_level || has_type(*component, "ByteLevel");
    const auto fallback = model->find("byte_fallback");
    const bool byte_fallback = fallback != model->end() && fallback->is_boolean() && fallback->get<bool>();
    if (!byte_level && !byte_fallback)
      return Status(ErrorCode::unsupported, fmt::format("{}: BPE without a ByteLevel pre-tokenizer or byte_fallback is "
                                                        "unsupported", source_));

    EMBER_RETURN_IF_ERROR(read_vocab(*model, byte_level));
    EMBER_RETURN_IF_ERROR(read_added_tokens(byte_level));
    // By text, then id: a text listed under two ids resolves to the lower one.
    std::sort(ids_.begin(), ids_.end());
    EMBER_RETURN_IF_ERROR(read_unknown_token(*model));
    auto merges = read_merges(*model);
    if (!merges) return merges.status();

    std::vector<std::pair<std::string, GgufValue>> keys;
    keys.emplace_back("tokenizer.ggml.model", GgufValue::string(byte_level ? "gpt2" : "llama"));
    if (byte_level) {
      auto pre = pre_tokenizer_name();
      if (!pre) return pre.status();
      keys.emplace_back("tokenizer.ggml.pre", GgufValue::string(pre.value()));
    } else {
      keys.emplace_back("tokenizer.ggml.pre", GgufValue::string("default"));
    }
    keys.emplace_back("tokenizer.ggml.tokens", GgufValue::strings(tokens_));
    if (!byte_level) keys.emplace_back("tokenizer.ggml.scores", scores(merges.value()));
    std::vector<GgufValue> types;
    types.reserve(types_.size());
    for (int32_t t : types_) types.push_back(GgufValue::i32(t));
    keys.emplace_back("tokenizer.ggml.token_type", GgufValue::array(GgufType::int32, std::move(types)));
    if (byte_level) {
      std::vector<std::string> joined;
      joined.reserve(merges->size());
      for (const auto& [left, right] : merges.value()) joined.push_back(left + " " + right);
      keys.emplace_back("tokenizer.ggml.merges", GgufValue::strings(joined));
    }
    EMBER_RETURN_IF_ERROR(add_special_ids(keys));
    if (!byte_level) keys.emplace_back("tokenizer.ggml.add_space_prefix", GgufValue::boolean(adds_space_prefix()));
    return keys;
  }

 private:
  Status corrupt(std::string_view what) const { return {ErrorCode::corrupt_file, fmt::format("{}: {}", source_, what)}; }

  Status place(int64_t id, const std::string& text, int32_t type) {
    if (id < 0 || id >= config_.vocab_size)
      return corrupt(fmt::format("token '{}' has id {}, outside the model's vocab_size {}", text, id, config_.vocab_size));
    const auto slot = static_cast<size_t>(id);
    if (filled_[slot] && tokens_[slot] != text)
      return corrupt(fmt::format("id {} names both '{}' and '{}'", id, tokens_[slot], text));
    if (!filled_[slot]) ids_.emplace_back(text, id);
    tokens_[slot] = text;
    types_[slot] = type;
    filled_[slot] = true;
    return {};
  }

  // Ids no token names are padded with "[PADn]" tokens, as llama.cpp's converter does.
  // Real files leave a few (a vocab_size rounded up to a multiple of 64 or 128); a tiny
  // file naming one token at id 16 million would otherwise cost gigabytes of padding.
  Status check_padding(size_t vocab_entries) const {
    const auto added = root_.find("added_tokens");
    const size_t named = vocab_entries + (added != root_.end() && added->is_array() ? added->size() : 0);
    const size_t size = static_cast<size_t>(config_.vocab_size);
    const size_t most_padding = std::max(named, kMostPaddingOfASmallVocabulary);
    if (size > named && size - named > most_padding)
      return corrupt(fmt::format("a vocabulary of {} ids names at most {} tokens; ember pads at most {} unnamed ids "
                                 "(is an id or vocab_size wrong?)",
                                 size, named, most_padding));
    return {};
  }

  Status read_vocab(const Json& model, bool byte_level) {
    const auto vocab = model.find("vocab");
    if (vocab == model.end() || !vocab->is_object()) return corrupt("model.vocab is not an object");
    EMBER_RETURN_IF_ERROR(check_padding(vocab->size()));
    const auto size = static_cast<size_t>(config_.vocab_size);
    tokens_.assign(size, std::string());
    types_.assign(size, unused);
    filled_.assign(size, false);
    for (const auto& [text, id] : vocab->items()) {
      if (!id.is_number_integer()) return corrupt(fmt::format("model.vocab gives '{}' the id {}", text, id.dump()));
      const bool byte_token = !byte_level && is_byte_token(text);
      EMBER_RETURN_IF_ERROR(place(id.get<int64_t>(), text, byte_token ? byte : normal));
    }
    for (size_t id = 0; id < size; ++id)
      if (!filled_[id]) tokens_[id] = fmt::format("[PAD{}]", id);
    return {};
  }

  Status read_added_tokens(bool byte_level) {
    const auto added = root_.find("added_tokens");
    if (added == root_.end() || added->is_null()) return {};
    if (!added->is_array()) return corrupt("added_tokens is not a list");
    for (const Json& token : *added) {
      const auto id = token.find("id");
      const auto content = token.find("content");
      if (!token.is_object() || id == token.end() || !id->is_number_integer() || content == token.end() ||
          !content->is_string())
        return corrupt(fmt::format("added token {} lacks an integer id or a content string", token.dump()));
      const auto special = token.find("special");
      const bool is_special = special != token.end() && special->is_boolean() && special->get<bool>();
      const std::string& text = content->get_ref<const std::string&>();
      const bool byte_token = !byte_level && is_byte_token(text);
      EMBER_RETURN_IF_ERROR(place(id->get<int64_t>(), text, byte_token ? byte : is_special ? control : user_defined));
      if (is_special) specials_.push_back(text);
    }
    return {};
  }

  Status read_unknown_token(const Json& model) {
    const auto it = model.find("unk_token");
    if (it == model.end() || it->is_null()) return {};
    if (!it->is_string()) return corrupt(fmt::format("model.unk_token is {}, not a string", it->dump()));
    unknown_id_ = id_of(it->get_ref<const std::string&>());
    if (!unknown_id_) return corrupt(fmt::format("model.unk_token '{}' is not in the vocabulary", it->get<std::string>()));
    types_[static_cast<size_t>(*unknown_id_)] = unknown;
    return {};
  }

  Result<std::vector<std::pair<std::string, std::string>>> read_merges(const Json& model) const {
    std::vector<std::pair<std::string, std::string>> merges;
    const auto list = model.find("merges");
    if (list == model.end() || list->is_null()) return merges;
    if (!list->is_array()) return corrupt("model.merges is not a list");
    merges.reserve(list->size());
    for (const Json& merge : *list) {
      if (merge.is_string()) {
        const std::string& text = merge.get_ref<const std::string&>();
        const size_t space = text.find(' ');
        if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos)
          return corrupt(fmt::format("merge \"{}\" is not two tokens separated by one space", text));
        merges.emplace_back(text.substr(0, space), text.substr(space + 1));
      } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
        merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
      } else {
        return corrupt(fmt::format("merge {} is neither \"a b\" nor [\"a\", \"b\"]", merge.dump()));
      }
    }
    return merges;
  }

  std::optional<int64_t> id_of(std::string_view text) const {
    const auto it = std::lower_bound(ids_.begin(), ids_.end(), text,
                                     [](const auto& entry, std::string_view wanted) { return entry.first < wanted; });
    if (it == ids_.end() || it->first != text) return std::nullopt;
    return it->second;
  }

  // A merge's result ranks by how early the merge comes: llama.cpp's SentencePiece
  // tokenizer merges the highest score first.
  GgufValue scores(const std::vector<std::pair<std::string, std::string>>& merges) const {
    std::vector<float> score(tokens_.size(), 0.0f);
    std::vector<bool> ranked(tokens_.size(), false);
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const auto id = id_of(merges[rank].first + merges[rank].second);
      if (!id || ranked[static_cast<size_t>(*id)]) continue;
      ranked[static_cast<size_t>(*id)] = true;
      score[static_cast<size_t>(*id)] = -static_cast<float>(rank + 1);
    }
    std::vector<GgufValue> values;
    values.reserve(score.size());
    for (float s : score) values.push_back(GgufValue::f32(s));
    return GgufValue::array(GgufType::float32, std::move(values));
  }

  Result<std::string> pre_tokenizer_name() const {
    bool splits_itself = false;
    for (const Json* component : components(root_, "pre_tokenizer", "pretokenizers")) {
      if (has_type(*component, "ByteLevel")) {
        const auto regex = component->find("use_regex");
        splits_itself = splits_itself || regex == component->end() || (regex->is_boolean() && regex->get<bool>());
      }
      if (!has_type(*component, "Split")) continue;
      const auto pattern = component->find("pattern");
      if (pattern == component->end() || !pattern->is_object()) return unknown_split(component->dump());
      const auto regex = pattern->find("Regex");
      if (regex == pattern->end() || !regex->is_string()) return unknown_split(component->dump());
      const std::string& text = regex->get_ref<const std::string&>();
      for (auto [known, name] : kKnownSplitRegexes)
        if (known == text) return std::string(name);
      return unknown_split(text);
    }
    // The ByteLevel pre-tokenizer's own regex is GPT-2's.
    if (splits_itself) return std::string("gpt-2");
    return unknown_split("(none)");
  }

  Status unknown_split(std::string_view split) const {
    return {ErrorCode::unsupported,
            fmt::format("{}: pre-tokenizer split {} is not one ember knows (Llama 3, Qwen2, GPT-2)", source_, split)};
  }

  // (token id before the text, token id after it) of a TemplateProcessing post-processor.
  std::pair<std::optional<int64_t>, std::optional<int64_t>> template_specials() const {
    for (const Json* component : components(root_, "post_processor", "processors")) {
      if (!has_type(*component, "TemplateProcessing")) continue;
      const auto single = component->find("single");
      if (single == component->end() || !single->is_array() || single->empty()) break;
      const auto special_id = [&](const Json& item) -> std::optional<int64_t> {
        const auto special = item.is_object() ? item.find("SpecialToken") : item.end();
        if (special == item.end() || !special->is_object()) return std::nullopt;
        const auto id = special->find("id");
        if (id == special->end() || !id->is_string()) return std::nullopt;
        return id_of(id->get_ref<const std::string&>());
      };
      return {special_id(single->front()), special_id(single->back())};
    }
    return {};
  }

  std::optional<int64_t> special_named(std::span<const std::string_view> names) const {
    for (std::string_view name : names)
      if (std::find(specials_.begin(), specials_.end(), name) != specials_.end()) return id_of(name);
    return std::nullopt;
  }

  Status add_special_ids(std::vector<std::pair<std::string, GgufValue>>& keys) const {
    const auto [prepended, appended] = template_specials();
    std::optional<int64_t> bos = config_.bos_token_id ? config_.bos_token_id : prepended ? prepended : special_named(kBosNames);
    std::optional<int64_t> eos = config_.eos_token_id ? config_.eos_token_id : appended ? appended : special_named(kEosNames);
    std::optional<int64_t> pad;
    if (const auto it = root_.find("padding"); it != root_.end() && it->is_object()) {
      const auto id = it->find("pad_id");
      if (id != it->end() && id->is_number_integer()) pad = id->get<int64_t>();
    }
    for (auto [key, id] : {std::pair{"tokenizer.ggml.bos_token_id", bos}, {"tokenizer.ggml.eos_token_id", eos},
                           {"tokenizer.ggml.unknown_token_id", unknown_id_}, {"tokenizer.ggml.padding_token_id", pad}}) {
      if (!id) continue;
      if (*id < 0 || *id >= config_.vocab_size)
        return corrupt(fmt::format("{} {} is outside the vocabulary of {}", key, *id, config_.vocab_size));
      keys.emplace_back(key, GgufValue::u32(static_cast<uint32_t>(*id)));
    }
    keys.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::boolean(prepended.has_value()));
    keys.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::boolean(appended.has_value()));
    return {};
  }

  // Llama 2's tokenizer.json prepends "▁" in its normalizer; newer ones use a
  // Metaspace pre-tokenizer that does it unless told never to.
  bool adds_space_prefix() const {
    for (const Json* component : components(root_, "normalizer", "normalizers")) {
      const auto prepend = component->find("prepend");
      if (has_type(*component, "Prepend") && prepend != component->end() && *prepend == "\u2581") return true;
    }
    for (const Json* component : components(root_, "pre_tokenizer", "pretokenizers")) {
      if (!has_type(*component, "Metaspace")) continue;
      const auto scheme = component->find("prepend_scheme");
      const auto legacy = component->find("add_prefix_space");
      if (scheme != component->end()) return *scheme != "never";
      return legacy == component->end() || *legacy == true;
    }
    return false;
  }

  const Json& root_;
  std::string source_;
  const ModelConfig& config_;
  std::vector<std::string> tokens_;
  std::vector<int32_t> types_;
  std::vector<bool> filled_;
  std::vector<std::pair<std::string, int64_t>> ids_;  // sorted by text
  std::vector<std::string> specials_;
  std::optional<int64_t> unknown_id_;
};

}  // namespace

Result<std::vector<std::pair<std::string, GgufValue>>> tokenizer_metadata_from_json(const std::filesystem::path& path,
                                                                                      const ModelConfig& config) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) return Status(ErrorCode::io_error, fmt::format("{}: cannot open", path.string()));
  std::ostringstream text;
  text << stream.rdbuf();
  if (stream.bad()) return Status(ErrorCode::io_error, fmt::format("{}: cannot read", path.string()));
  try {
    const Json root = Json::parse(text.str());
    if (!root.is_object()) return Status(ErrorCode::corrupt_file, fmt::format("{}: not a JSON object", path.string()));
    if (config.vocab_size <= 0)
      return invalid_argument(fmt::format("{}: the model's vocab_size {} is not positive", path.string(), config.vocab_size));
    if (config.vocab_size > kMaxVocabSize)
      return invalid_argument(fmt::format("{}: a vocabulary of {} tokens is past ember's limit of {} (2^24)", path.string(),
                                          config.vocab_size, kMaxVocabSize));
    TokenizerReader reader(root, path, config);
    return reader.read();
  } catch (const Json::exception& error) {
    return Status(ErrorCode::corrupt_file, fmt::format("{}: {}", path.string(), error.what()));
  } catch (const std::bad_alloc&) {
    return out_of_memory(fmt::format("{}: out of memory while reading the tokenizer", path.string()));
  }
}

}  // namespace ember
