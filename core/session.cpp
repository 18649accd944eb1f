#include "ember/session.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "core/model_source.h"

namespace ember {
namespace {

constexpr std::string_view kChatTemplate = "tokenizer.chat_template";

}  // namespace

Session::Session(Model model, Tokenizer tokenizer, std::optional<std::string> chat_template)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), chat_template_(std::move(chat_template)) {
  histories_.resize(static_cast<size_t>(model_.sequences()));
  logits_.resize(static_cast<size_t>(model_.sequences()));
}

Result<Session> Session::load(const std::filesystem::path& path, const ModelOptions& options) {
  // The tokenizer and chat template come from the same metadata the model is read from:
  // GGUF keys, or for a folder the keys its tokenizer files convert to.
  auto source = open_model_source(path);
  if (!source) return source.status();
  auto tokenizer = Tokenizer::from_metadata(source->metadata, path.string());
  if (!tokenizer) return tokenizer.status();
  std::optional<std::string> chat_template;
  for (const auto& [key, value] : source->metadata)
    if (key == kChatTemplate && value.as_string() != nullptr) chat_template = *value.as_string();
  auto model = Model::load(path, options);
  if (!model) return model.status();
  if (tokenizer->vocab_size() > model->config().vocab_size)
    return invalid_argument(fmt::format("{}: the tokenizer has {} tokens but the model's vocabulary only {}",
                                        path.string(), tokenizer->vocab_size(), model->config().vocab_size));
  return Session(std::move(model.value()), std::move(tokenizer.value()), std::move(chat_template));
}

Result<std::vector<int32_t>> Session::tokenize(std::string_view text, bool add_special) const {
  return tokenizer_.encode(text, add_special);
}

Result<std::string> Session::detokenize(std::span<const int32_t> ids) const { return tokenizer_.decode(ids); }

Status Session::check_sequence(int sequence) const {
  if (sequence < 0 || sequence >= model_.sequences())
    return invalid_argument(fmt::format("sequence {} does not exist; the session has {}", sequence,
                                        model_.sequences()));
  return {};
}

Status Session::eval(std::span<const int32_t> tokens, int sequence) {
  const SequenceInput input{sequence, tokens};
  return eval(std::span<const SequenceInput>(&input, 1));
}

Status Session::eval(std::span<const SequenceInput> inputs) {
  std::vector<SequenceTokens> batch;
  for (const SequenceInput& input : inputs) {
    EMBER_RETURN_IF_ERROR(check_sequence(input.sequence));
    batch.push_back({input.sequence, position(input.sequence), input.tokens, false});
  }
  auto logits = model_.forward(batch);
  if (!logits) return logits.status();
  return store_logits(logits.value(), inputs, false);
}

Result<Tensor> Session::eval_all_logits(std::span<const int32_t> tokens, int sequence) {
  EMBER_RETURN_IF_ERROR(check_sequence(sequence));
  const SequenceTokens part{sequence, position(sequence), tokens, true};
  auto logits = model_.forward(std::span<const SequenceTokens>(&part, 1));
  if (!logits) return logits.status();
  const SequenceInput input{sequence, tokens};
  EMBER_RETURN_IF_ERROR(store_logits(logits.value(), std::span<const SequenceInput>(&input, 1), true));
  return logits;
}

Status Session::store_logits(const Tensor& logits, std::span<const SequenceInput> inputs, bool all_rows) {
  auto data = logits.read<float>();
  if (!data) return data.status();
  const int64_t vocab = logits.dim(1);
  int64_t row = -1;
  for (const SequenceInput& input : inputs) {
    row += all_rows ? static_cast<int64_t>(input.tokens.size()) : 1;
    const float* last = data.value() + row * vocab;
    auto& kept = logits_[static_cast<size_t>(input.sequence)];
    kept.assign(last, last + vocab);
    auto& history = histories_[static_cast<size_t>(input.sequence)];
    history.insert(history.end(), input.tokens.begin(), input.tokens.end());
  }
  return {};
}

std::span<const float> Session::logits(int sequence) const {
  if (!check_sequence(sequence).ok()) return {};
  return logits_[static_cast<size_t>(sequence)];
}

Result<int32_t> Session::sample(Sampler& sampler, int sequence) const {
  EMBER_RETURN_IF_ERROR(check_sequence(sequence));
  if (logits(sequence).empty())
    return invalid_argument(fmt::format("sample: sequence {} has no logits yet; eval a prompt first", sequence));
  return sampler.sample(logits(sequence), history(sequence));
}

std::span<const int32_t> Session::history(int sequence) const {
  if (!check_sequence(sequence).ok()) return {};
  return histories_[static_cast<size_t>(sequence)];
}

Status Session::rewind(int64_t position, int sequence) {
  EMBER_RETURN_IF_ERROR(check_sequence(sequence));
  auto& history = histories_[static_cast<size_t>(sequence)];
  if (position < 0 || position > static_cast<int64_t>(history.size()))
    return invalid_argument(fmt::format("rewind to position {}: sequence {} holds {} tokens", position, sequence,
                                        history.size()));
  if (position < static_cast<int64_t>(history.size())) logits_[static_cast<size_t>(sequence)].clear();
  history.resize(static_cast<size_t>(position));
  return {};
}

Status Session::fork(int from, int to) {
  EMBER_RETURN_IF_ERROR(check_sequence(from));
  EMBER_RETURN_IF_ERROR(check_sequence(to));
  EMBER_RETURN_IF_ERROR(model_.copy_sequence(from, to, position(from)));
  histories_[static_cast<size_t>(to)] = histories_[static_cast<size_t>(from)];
  logits_[static_cast<size_t>(to)] = logits_[static_cast<size_t>(from)];
  return {};
}

}  // namespace ember
