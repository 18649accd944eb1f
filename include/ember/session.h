// A model, its tokenizer and the state of one or more sequences being generated: the API
// run-model is written against. A sequence's history is the tokens evaluated into its KV
// cache so far; logits(sequence) are those of its last evaluated token.
//
//   auto session = ember::Session::load("model.gguf");
//   auto ids = session->tokenize("Once upon a time");
//   session->eval(*ids);
//   auto sampler = ember::Sampler::create({.temperature = 0.7f, .seed = 42});
//   auto next = session->sample(*sampler);
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ember/model.h"
#include "ember/sampling.h"
#include "ember/status.h"
#include "ember/tokenizer.h"

namespace ember {

class Session {
 public:
  // `path`: a GGUF file (model and tokenizer.ggml.* keys) or a Hugging Face folder
  // (config.json, safetensors, tokenizer.json). Errors name the file.
  static Result<Session> load(const std::filesystem::path& path, const ModelOptions& options = {});

  Model& model() { return model_; }
  const Model& model() const { return model_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  // The Jinja source of the model's chat template (GGUF tokenizer.chat_template, or
  // tokenizer_config.json's chat_template), when it has one.
  const std::optional<std::string>& chat_template_source() const { return chat_template_; }

  // With add_special, the BOS/EOS the tokenizer's file asks for are added.
  Result<std::vector<int32_t>> tokenize(std::string_view text, bool add_special = true) const;
  Result<std::string> detokenize(std::span<const int32_t> ids) const;

  // Evaluates `tokens` after the sequence's history in one batched pass and appends them.
  // Errors (nothing changes): no tokens, an id outside the vocabulary, the context full.
  Status eval(std::span<const int32_t> tokens, int sequence = 0);
  // The same, returning the logits of every token, f32 [tokens, vocab].
  Result<Tensor> eval_all_logits(std::span<const int32_t> tokens, int sequence = 0);
  // Several sequences' tokens in one pass (one token each when decoding in parallel).
  struct SequenceInput {
    int sequence = 0;
    std::span<const int32_t> tokens;
  };
  Status eval(std::span<const SequenceInput> inputs);

  // The logits of the sequence's last evaluated token (empty before any eval).
  std::span<const float> logits(int sequence = 0) const;
  // The next token from logits(sequence), the history feeding the repetition penalty.
  // It is not evaluated: pass it to eval() to continue.
  Result<int32_t> sample(Sampler& sampler, int sequence = 0) const;

  std::span<const int32_t> history(int sequence = 0) const;
  int64_t position(int sequence = 0) const { return static_cast<int64_t>(history(sequence).size()); }
  // Forgets the sequence's tokens from `position` on (0: all), so eval continues there.
  Status rewind(int64_t position, int sequence = 0);
  void reset(int sequence = 0) { (void)rewind(0, sequence); }
  // Makes sequence `to` a copy of sequence `from` (history, cache and logits).
  Status fork(int from, int to);

 private:
  Session(Model model, Tokenizer tokenizer, std::optional<std::string> chat_template);
  Status check_sequence(int sequence) const;
  Status store_logits(const Tensor& logits, std::span<const SequenceInput> inputs, bool all_rows);

  Model model_;
  Tokenizer tokenizer_;
  std::optional<std::string> chat_template_;
  std::vector<std::vector<int32_t>> histories_;
  std::vector<std::vector<float>> logits_;
};

}  // namespace ember
