#include <array>
#include <functional>
#include <queue>
#include <tuple>

#include <fmt/format.h>

#include "core/tokenizer_model.h"

namespace ember {

namespace {

constexpr size_t kWordCacheLimit = 1 << 16;

// GPT-2 spells the printable Latin-1 bytes as themselves and shifts the rest
// (controls, space, 0x7F–0xA0, 0xAD) to U+0100 onwards, so no token holds a space.
const std::array<char32_t, 256>& byte_table() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t shifted = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : shifted++;
    }
    return t;
  }();
  return table;
}

// Splits `word` into UTF-8 characters.
std::vector<std::string> characters(std::string_view word) {
  std::vector<std::string> symbols;
  for (size_t at = 0; at < word.size();) {
    const auto lead = static_cast<uint8_t>(word[at]);
    const size_t length = std::min(word.size() - at, size_t{lead < 0x80 ? 1u : lead < 0xE0 ? 2u : lead < 0xF0 ? 3u : 4u});
    symbols.emplace_back(word.substr(at, length));
    at += length;
  }
  return symbols;
}

// Repeatedly merges the adjacent pair of lowest rank (leftmost on ties); `rank`
// returns nullopt for a pair that does not merge. A heap of candidate pairs over a
// linked list keeps this O(n log n): a SentencePiece prompt is one long word.
template <typename Rank>
void merge_pairs(std::vector<std::string>& symbols, Rank rank) {
  const size_t count = symbols.size();
  if (count < 2) return;
  std::vector<size_t> next(count), previous(count);
  for (size_t i = 0; i < count; ++i) {
    next[i] = i + 1;
    previous[i] = i == 0 ? count : i - 1;  // `count` stands for "none"
  }
  // (rank, left, right, left length, right length): symbols only grow or empty, so a
  // changed length tells a stale candidate.
  using Candidate = std::tuple<double, size_t, size_t, size_t, size_t>;
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto offer = [&](size_t left, size_t right) {
    if (left >= count || right >= count) return;
    if (const std::optional<double> r = rank(symbols[left], symbols[right]))
      queue.emplace(*r, left, right, symbols[left].size(), symbols[right].size());
  };
  for (size_t i = 0; i + 1 < count; ++i) offer(i, i + 1);
  while (!queue.empty()) {
    const auto [r, left, right, left_length, right_length] = queue.top();
    queue.pop();
    const bool stale = symbols[left].empty() || next[left] != right || symbols[left].size() != left_length ||
                       symbols[right].size() != right_length;
    if (stale) continue;
    symbols[left] += symbols[right];
    symbols[right].clear();
    next[left] = next[right];
    if (next[right] < count) previous[next[right]] = left;
    offer(previous[left], left);
    offer(left, next[left]);
  }
  std::vector<std::string> merged;
  for (size_t i = 0; i < count; i = next[i]) merged.push_back(std::move(symbols[i]));
  symbols = std::move(merged);
}

Status encode_byte_level_word(const TokenizerModel& model, std::string_view word, std::vector<int32_t>& ids) {
  const std::string key(word);
  {
    std::lock_guard lock(model.cache_mutex);
    if (const auto hit = model.word_cache.find(key); hit != model.word_cache.end()) {
      ids.insert(ids.end(), hit->second.begin(), hit->second.end());
      return {};
    }
  }
  std::string spelled;
  for (char c : word) spelled += utf8_encode(byte_to_code_point(static_cast<uint8_t>(c)));
  std::vector<int32_t> word_ids;
  const auto whole = model.whole_word_first ? model.id_of.find(spelled) : model.id_of.end();
  if (whole != model.id_of.end()) {
    word_ids.push_back(whole->second);
  } else {
    std::vector<std::string> symbols = characters(spelled);
    std::string pair;
    merge_pairs(symbols, [&](const std::string& left, const std::string& right) -> std::optional<double> {
      pair.assign(left).append(" ").append(right);
      const auto it = model.merge_rank.find(pair);
      return it == model.merge_rank.end() ? std::nullopt : std::optional<double>(it->second);
    });
    for (const std::string& symbol : symbols) {
      const auto id = model.id_of.find(symbol);
      if (id == model.id_of.end()) return invalid_argument(fmt::format("no token spells the piece '{}' of '{}'", symbol, key));
      word_ids.push_back(id->second);
    }
  }
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
  std::lock_guard lock(model.cache_mutex);
  if (model.word_cache.size() >= kWordCacheLimit) model.word_cache.clear();
  model.word_cache.emplace(key, std::move(word_ids));
  return {};
}

// Pieces of the split regex, and the text between matches, each in order (tokenizers'
// "Isolated" split behaviour).
Status encode_byte_level(const TokenizerModel& model, std::string_view text, std::vector<int32_t>& ids) {
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
      pcre2_match_data_create_from_pattern(model.split.get(), nullptr), &pcre2_match_data_free);
  if (!match) return out_of_memory("no memory for regex match data");
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t at = 0;
  while (at < text.size()) {
    // The text was checked as UTF-8 before; PCRE2 need not check it again per match.
    const int found = pcre2_match(model.split.get(), subject, text.size(), at, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
    if (found == PCRE2_ERROR_NOMATCH) break;
    if (found < 0) return internal_error(fmt::format("pre-tokenizer regex failed with PCRE2 error {} at byte {}", found, at));
    const PCRE2_SIZE* range = pcre2_get_ovector_pointer(match.get());
    // Every alternative of the known regexes consumes a character; an empty match would loop.
    if (range[1] == range[0]) return internal_error(fmt::format("pre-tokenizer regex matched nothing at byte {}", range[0]));
    if (range[0] > at) EMBER_RETURN_IF_ERROR(encode_byte_level_word(model, text.substr(at, range[0] - at), ids));
    EMBER_RETURN_IF_ERROR(encode_byte_level_word(model, text.substr(range[0], range[1] - range[0]), ids));
    at = range[1];
  }
  if (at < text.size()) EMBER_RETURN_IF_ERROR(encode_byte_level_word(model, text.substr(at), ids));
  return {};
}

// The whole fragment is one word: spaces become "▁" and merges go by the merged token's score.
Status encode_sentencepiece(const TokenizerModel& model, std::string_view text, bool space_prefix, std::vector<int32_t>& ids) {
  std::string spelled = space_prefix ? "\u2581" : "";
  for (char c : text) spelled += c == ' ' ? std::string("\u2581") : std::string(1, c);
  std::vector<std::string> symbols = characters(spelled);
  std::string joined;
  merge_pairs(symbols, [&](const std::string& left, const std::string& right) -> std::optional<double> {
    joined.assign(left).append(right);
    const auto it = model.id_of.find(joined);
    if (it == model.id_of.end()) return std::nullopt;
    return -static_cast<double>(model.scores[static_cast<size_t>(it->second)]);
  });
  for (const std::string& symbol : symbols) {
    if (const auto it = model.id_of.find(symbol); it != model.id_of.end()) {
      ids.push_back(it->second);
      continue;
    }
    for (char c : symbol) {
      const int32_t byte_id = model.byte_token[static_cast<uint8_t>(c)];
      if (byte_id >= 0) ids.push_back(byte_id);
      else if (model.unk) ids.push_back(*model.unk);
      else return invalid_argument(fmt::format("no token, byte token or unknown token spells '{}'", symbol));
    }
  }
  return {};
}

}  // namespace

char32_t byte_to_code_point(uint8_t b) { return byte_table()[b]; }

std::optional<uint8_t> code_point_to_byte(char32_t code_point) {
  static const std::unordered_map<char32_t, uint8_t> inverse = [] {
    std::unordered_map<char32_t, uint8_t> map;
    for (int b = 0; b < 256; ++b) map.emplace(byte_table()[static_cast<size_t>(b)], static_cast<uint8_t>(b));
    return map;
  }();
  const auto it = inverse.find(code_point);
  return it == inverse.end() ? std::nullopt : std::optional<uint8_t>(it->second);
}

// Added tokens split the text first (longest match wins); each fragment between them is
// encoded on its own. As llama.cpp, a SentencePiece fragment gets the space prefix when
// it comes first or right after an added token.
Status encode_into(const TokenizerModel& model, std::string_view text, std::vector<int32_t>& ids) {
  bool after_added = true;
  const auto encode_fragment = [&](std::string_view fragment) -> Status {
    if (fragment.empty()) return {};
    const bool prefix = model.add_space_prefix && after_added;
    after_added = false;
    return model.kind == TokenizerKind::byte_level ? encode_byte_level(model, fragment, ids)
                                                   : encode_sentencepiece(model, fragment, prefix, ids);
  };
  size_t fragment_start = 0;
  for (size_t at = 0; at < text.size();) {
    const std::pair<std::string, int32_t>* match = nullptr;
    if (model.starts_added[static_cast<uint8_t>(text[at])])
      for (const auto& entry : model.added)
        if (text.substr(at).starts_with(entry.first)) {
          match = &entry;
          break;
        }
    if (!match) {
      ++at;
      continue;
    }
    EMBER_RETURN_IF_ERROR(encode_fragment(text.substr(fragment_start, at - fragment_start)));
    ids.push_back(match->second);
    after_added = true;
    at += match->first.size();
    fragment_start = at;
  }
  return encode_fragment(text.substr(fragment_start));
}

}  // namespace ember
