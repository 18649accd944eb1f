#include <fmt/format.h>

#include "core/tokenizer_model.h"
#include "ember/tokenizer.h"

namespace ember {

namespace {

constexpr std::string_view kReplacement = "\uFFFD";

enum class Utf8Sequence { complete, incomplete, invalid };

// Whether the character starting at text[at] is whole and valid (setting `length`),
// cut short by the end of the text but valid so far, or invalid (no overlong forms,
// surrogates or code points past U+10FFFF).
Utf8Sequence check_sequence(std::string_view text, size_t at, size_t& length) {
  const auto lead = static_cast<uint8_t>(text[at]);
  uint8_t second_low = 0x80, second_high = 0xBF;
  if (lead < 0x80) length = 1;
  else if (lead >= 0xC2 && lead <= 0xDF) length = 2;
  else if (lead >= 0xE0 && lead <= 0xEF) length = 3;
  else if (lead >= 0xF0 && lead <= 0xF4) length = 4;
  else return Utf8Sequence::invalid;
  if (lead == 0xE0) second_low = 0xA0;
  if (lead == 0xED) second_high = 0x9F;
  if (lead == 0xF0) second_low = 0x90;
  if (lead == 0xF4) second_high = 0x8F;
  for (size_t i = 1; i < length; ++i) {
    if (at + i >= text.size()) return Utf8Sequence::incomplete;
    const auto c = static_cast<uint8_t>(text[at + i]);
    const bool fits = i == 1 ? (c >= second_low && c <= second_high) : (c >= 0x80 && c <= 0xBF);
    if (!fits) return Utf8Sequence::invalid;
  }
  return Utf8Sequence::complete;
}

}  // namespace

std::string utf8_encode(char32_t code_point) {
  std::string out;
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
  return out;
}

std::optional<size_t> first_invalid_utf8(std::string_view text) {
  for (size_t at = 0, length = 0; at < text.size(); at += length)
    if (check_sequence(text, at, length) != Utf8Sequence::complete) return at;
  return std::nullopt;
}

Result<std::string> TokenDecoder::next(int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= model_->tokens.size())
    return out_of_range(fmt::format("token id {} is outside the vocabulary of {}", id, model_->tokens.size()));
  std::string_view piece = model_->bytes_of[static_cast<size_t>(id)];
  // SentencePiece's space prefix is not part of the text; a BOS before it does not count.
  const int32_t type = model_->types[static_cast<size_t>(id)];
  if (at_start_ && model_->add_space_prefix && type == normal && piece.starts_with(' ')) piece.remove_prefix(1);
  if (type != control) at_start_ = false;
  pending_.append(piece);
  std::string out;
  size_t at = 0;
  while (at < pending_.size()) {
    size_t length = 0;
    const Utf8Sequence sequence = check_sequence(pending_, at, length);
    if (sequence == Utf8Sequence::incomplete) break;
    if (sequence == Utf8Sequence::invalid) {
      out.append(kReplacement);
      at += 1;
    } else {
      out.append(pending_, at, length);
      at += length;
    }
  }
  pending_.erase(0, at);
  return out;
}

std::string TokenDecoder::finish() {
  std::string out;
  size_t at = 0;
  while (at < pending_.size()) {
    size_t length = 0;
    const Utf8Sequence sequence = check_sequence(pending_, at, length);
    // An incomplete character at the end is one replacement, as its bytes run out.
    if (sequence == Utf8Sequence::incomplete) {
      out.append(kReplacement);
      break;
    }
    out.append(sequence == Utf8Sequence::complete ? pending_.substr(at, length) : std::string(kReplacement));
    at += sequence == Utf8Sequence::complete ? length : 1;
  }
  pending_.clear();
  at_start_ = true;
  return out;
}

Result<std::string> Tokenizer::decode(std::span<const int32_t> ids) const {
  TokenDecoder decoder(*this);
  std::string text;
  for (int32_t id : ids) {
    auto piece = decoder.next(id);
    if (!piece) return piece.status();
    text += piece.value();
  }
  return text + decoder.finish();
}

}  // namespace ember
