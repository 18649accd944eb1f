// Chat prompts for instruction-tuned models: the model's chat template (Jinja source in
// GGUF key tokenizer.chat_template, or "chat_template" in a Hugging Face folder's
// tokenizer_config.json) is recognised among the common ones by distinctive substrings,
// as llama.cpp's llm_chat_detect_template does, and applied by hand-written code that
// reproduces llama.cpp's llm_chat_apply_template output. There is no Jinja engine: a
// template that matches none of the known ones is an error, and the user can name one.
//
// BOS: apply() never writes the BOS token at the start of the prompt; tokenize the text
// with BOS added, as llama.cpp does (a template that opens with {{ bos_token }} gets it
// from the tokenizer). Only "llama2-sys-bos" writes "<s>" as text between turns, so its
// prompt must be tokenized with special tokens parsed.
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ember/status.h"

namespace ember {

inline constexpr std::string_view kChatTemplateKey = "tokenizer.chat_template";

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

enum class ChatTemplateKind { chatml, llama2, llama3, zephyr, mistral, gemma, phi3 };

class ChatTemplate {
 public:
  // Recognises a Jinja template source, or a bare name as named() takes (llama.cpp accepts
  // both in the same place). Error (unsupported) when it matches none; the message lists
  // the known names.
  static Result<ChatTemplate> detect(std::string_view jinja_source);
  // By name, for a --chat-template option: "chatml", "llama2", "llama2-sys",
  // "llama2-sys-bos", "llama2-sys-strip", "llama3", "mistral-v1", "mistral-v3",
  // "mistral-v3-tekken", "mistral-v7", "mistral-v7-tekken", "zephyr", "gemma", "phi3"
  // (llama.cpp's names). Error (invalid_argument) lists them.
  static Result<ChatTemplate> named(std::string_view name);

  ChatTemplateKind kind() const;
  // The variant's name: one of those named() takes.
  std::string_view name() const;

  // The prompt text for the conversation so far; with add_assistant_prefix, the text that
  // opens the assistant's turn is appended. The Llama 2 and Mistral formats have no such
  // text (a user turn already ends with [/INST]) and ignore it. Gemma has no system role:
  // system text goes at the start of the next user turn.
  std::string apply(std::span<const ChatMessage> messages, bool add_assistant_prefix) const;

  // Text the model emits to end its turn ("<|im_end|>", "<|eot_id|>", "</s>", ...).
  std::string_view end_of_turn() const;

  struct Format;  // one known template variant (chat_template.cpp)

 private:
  explicit ChatTemplate(const Format* format) : format_(format) {}
  const Format* format_;
};

// The "chat_template" of a Hugging Face tokenizer_config.json: the string, or from a list
// of {name, template} objects the one named "default". nullopt when there is none.
// Malformed JSON, or a chat_template of another type, is an error naming the file.
Result<std::optional<std::string>> read_hf_chat_template(const std::filesystem::path& tokenizer_config);

}  // namespace ember
