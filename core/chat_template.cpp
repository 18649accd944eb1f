#include "ember/chat_template.h"

#include <array>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ember {

struct ChatTemplate::Format {
  std::string_view name;
  ChatTemplateKind kind;
  std::string_view end_of_turn;
  // Llama 2 family: <<SYS>> tags for the system text, "<s>" before each later [INST], strip message whitespace.
  bool system_tags = false;
  bool bos_in_history = false;
  bool strip = false;
  // Mistral family: the spaces around [INST] and replies differ by tokenizer version.
  std::string_view leading_space = {};
  std::string_view trailing_space = {};
  bool trim_reply = false;
  bool system_prompt_tags = false;  // v7: [SYSTEM_PROMPT] ... [/SYSTEM_PROMPT]
};

namespace {

using Format = ChatTemplate::Format;
using Kind = ChatTemplateKind;

constexpr std::array kFormats = {
    Format{.name = "chatml", .kind = Kind::chatml, .end_of_turn = "<|im_end|>"},
    Format{.name = "llama2", .kind = Kind::llama2, .end_of_turn = "</s>"},
    Format{.name = "llama2-sys", .kind = Kind::llama2, .end_of_turn = "</s>", .system_tags = true},
    Format{.name = "llama2-sys-bos", .kind = Kind::llama2, .end_of_turn = "</s>", .system_tags = true,
           .bos_in_history = true},
    Format{.name = "llama2-sys-strip", .kind = Kind::llama2, .end_of_turn = "</s>", .system_tags = true,
           .strip = true},
    Format{.name = "llama3", .kind = Kind::llama3, .end_of_turn = "<|eot_id|>"},
    Format{.name = "mistral-v1", .kind = Kind::mistral, .end_of_turn = "</s>", .leading_space = " ",
           .trailing_space = " "},
    Format{.name = "mistral-v3", .kind = Kind::mistral, .end_of_turn = "</s>", .trailing_space = " ",
           .trim_reply = true},
    Format{.name = "mistral-v3-tekken", .kind = Kind::mistral, .end_of_turn = "</s>"},
    Format{.name = "mistral-v7", .kind = Kind::mistral, .end_of_turn = "</s>", .trailing_space = " ",
           .system_prompt_tags = true},
    Format{.name = "mistral-v7-tekken", .kind = Kind::mistral, .end_of_turn = "</s>", .system_prompt_tags = true},
    Format{.name = "zephyr", .kind = Kind::zephyr, .end_of_turn = "<|endoftext|>"},
    Format{.name = "gemma", .kind = Kind::gemma, .end_of_turn = "<end_of_turn>"},
    Format{.name = "phi3", .kind = Kind::phi3, .end_of_turn = "<|end|>"},
};

const Format* find_format(std::string_view name) {
  for (const Format& format : kFormats)
    if (format.name == name) return &format;
  return nullptr;
}

std::string known_names() {
  std::string names;
  for (const Format& format : kFormats) {
    if (!names.empty()) names += ", ";
    names += format.name;
  }
  return names;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// The variant llama.cpp's llm_chat_detect_template picks, tested in its order, which
// matters: a Llama 2 template also says "[INST]", a Phi-4 one "<|im_start|>". A family
// ember does not apply yields its llama.cpp name, so the error can say what it looks like.
std::string_view detected_name(std::string_view source) {
  const auto has = [source](std::string_view marker) { return source.find(marker) != std::string_view::npos; };
  if (has("<|im_start|>")) {
    if (has("<|im_sep|>")) return "phi4";
    if (has("<end_of_utterance>")) return "smolvlm";
    return "chatml";
  }
  if (source.starts_with("mistral") || has("[INST]")) {
    if (has("[SYSTEM_PROMPT]")) return "mistral-v7";
    if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
      if (has(" [INST]")) return "mistral-v1";
      if (has("\"[INST]\"")) return "mistral-v3-tekken";
      return "mistral-v3";
    }
    if (has("content.strip()")) return "llama2-sys-strip";
    if (has("bos_token + '[INST]")) return "llama2-sys-bos";
    if (has("<<SYS>>")) return "llama2-sys";
    return "llama2";
  }
  if (has("<|assistant|>") && has("<|end|>")) return "phi3";
  if (has("[gMASK]<sop>")) return "chatglm4";
  if (has("<|assistant|>") && has("<|user|>")) return has("</s>") ? "falcon3" : "glmedge";
  if (has("<|{{ item['role'] }}|>") && has("<|begin_of_image|>")) return "glmedge";
  if (has("<|user|>") && has("<|endoftext|>")) return "zephyr";
  if (has("bos_token + message['role']")) return "monarch";
  if (has("<start_of_turn>")) return "gemma";
  if (has("'\\n\\nAssistant: ' + eos_token")) return "orion";
  if (has("GPT4 Correct ")) return "openchat";
  if (has("USER: ") && has("ASSISTANT: ")) return "vicuna";
  if (has("### Instruction:") && has("<|EOT|>")) return "deepseek";
  if (has("<|START_OF_TURN_TOKEN|>") && has("<|USER_TOKEN|>")) return "command-r";
  if (has("<|start_header_id|>") && has("<|end_header_id|>")) return "llama3";
  return {};
}

void apply_llama2(const Format& format, std::span<const ChatMessage> messages, std::string& out) {
  // The first [INST] follows the BOS the tokenizer adds, so it never gets "<s>" here.
  bool inside_turn = true;
  out += "[INST] ";
  for (const ChatMessage& message : messages) {
    const std::string_view content = format.strip ? trim(message.content) : std::string_view(message.content);
    if (!inside_turn) {
      inside_turn = true;
      out += format.bos_in_history ? "<s>[INST] " : "[INST] ";
    }
    if (message.role == "system") {
      // Without <<SYS>> the system text still goes first in the opening turn, as plain text.
      out += format.system_tags ? fmt::format("<<SYS>>\n{}\n<</SYS>>\n\n", content) : fmt::format("{}\n", content);
    } else if (message.role == "user") {
      out += fmt::format("{} [/INST]", content);
    } else {
      out += fmt::format("{}</s>", content);
      inside_turn = false;
    }
  }
}

void apply_mistral(const Format& format, std::span<const ChatMessage> messages, std::string& out) {
  const std::string_view lead = format.leading_space, trail = format.trailing_space;
  if (format.system_prompt_tags) {
    for (const ChatMessage& message : messages) {
      if (message.role == "system") out += fmt::format("[SYSTEM_PROMPT]{}{}[/SYSTEM_PROMPT]", trail, message.content);
      else if (message.role == "user") out += fmt::format("[INST]{}{}[/INST]", trail, message.content);
      else out += fmt::format("{}{}</s>", trail, message.content);
    }
    return;
  }
  bool inside_turn = false;
  for (const ChatMessage& message : messages) {
    if (!inside_turn) {
      out += fmt::format("{}[INST]{}", lead, trail);
      inside_turn = true;
    }
    if (message.role == "system") {
      out += fmt::format("{}\n\n", message.content);
    } else if (message.role == "user") {
      out += fmt::format("{}{}[/INST]", message.content, lead);
    } else {
      out += fmt::format("{}{}</s>", trail, format.trim_reply ? trim(message.content) : message.content);
      inside_turn = false;
    }
  }
}

void apply_gemma(std::span<const ChatMessage> messages, bool add_assistant_prefix, std::string& out) {
  std::string system_text;
  for (const ChatMessage& message : messages) {
    if (message.role == "system") {
      system_text += trim(message.content);
      continue;
    }
    const std::string_view role = message.role == "assistant" ? "model" : std::string_view(message.role);
    out += fmt::format("<start_of_turn>{}\n", role);
    if (!system_text.empty() && role != "model") {
      out += system_text + "\n\n";
      system_text.clear();
    }
    out += fmt::format("{}<end_of_turn>\n", trim(message.content));
  }
  if (add_assistant_prefix) out += "<start_of_turn>model\n";
}

}  // namespace

Result<ChatTemplate> ChatTemplate::detect(std::string_view jinja_source) {
  if (const Format* format = find_format(jinja_source)) return ChatTemplate(format);
  const std::string_view name = detected_name(jinja_source);
  if (const Format* format = find_format(name)) return ChatTemplate(format);
  if (!name.empty())
    return unsupported(fmt::format("the chat template looks like llama.cpp's '{}', which ember does not apply "
                                   "(known: {})",
                                   name, known_names()));
  return unsupported(fmt::format("the chat template matches none that ember knows ({})", known_names()));
}

Result<ChatTemplate> ChatTemplate::named(std::string_view name) {
  if (const Format* format = find_format(name)) return ChatTemplate(format);
  return invalid_argument(fmt::format("unknown chat template '{}' (known: {})", name, known_names()));
}

ChatTemplateKind ChatTemplate::kind() const { return format_->kind; }
std::string_view ChatTemplate::name() const { return format_->name; }
std::string_view ChatTemplate::end_of_turn() const { return format_->end_of_turn; }

std::string ChatTemplate::apply(std::span<const ChatMessage> messages, bool add_assistant_prefix) const {
  std::string out;
  switch (format_->kind) {
    case Kind::chatml:
      for (const ChatMessage& message : messages)
        out += fmt::format("<|im_start|>{}\n{}<|im_end|>\n", message.role, message.content);
      if (add_assistant_prefix) out += "<|im_start|>assistant\n";
      break;
    case Kind::llama2:
      apply_llama2(*format_, messages, out);
      break;
    case Kind::llama3:
      for (const ChatMessage& message : messages)
        out += fmt::format("<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>", message.role,
                           trim(message.content));
      if (add_assistant_prefix) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case Kind::mistral:
      apply_mistral(*format_, messages, out);
      break;
    case Kind::zephyr:
      for (const ChatMessage& message : messages)
        out += fmt::format("<|{}|>\n{}<|endoftext|>\n", message.role, message.content);
      if (add_assistant_prefix) out += "<|assistant|>\n";
      break;
    case Kind::gemma:
      apply_gemma(messages, add_assistant_prefix, out);
      break;
    case Kind::phi3:
      for (const ChatMessage& message : messages)
        out += fmt::format("<|{}|>\n{}<|end|>\n", message.role, message.content);
      if (add_assistant_prefix) out += "<|assistant|>\n";
      break;
  }
  return out;
}

Result<std::optional<std::string>> read_hf_chat_template(const std::filesystem::path& tokenizer_config) {
  const std::string source = tokenizer_config.string();
  std::ifstream stream(tokenizer_config, std::ios::binary);
  if (!stream) return Status(ErrorCode::io_error, fmt::format("{}: cannot open", source));
  std::ostringstream text;
  text << stream.rdbuf();
  if (stream.bad()) return Status(ErrorCode::io_error, fmt::format("{}: cannot read", source));
  using Json = nlohmann::json;
  Json root;
  try {
    root = Json::parse(text.str());
  } catch (const Json::exception& error) {
    return Status(ErrorCode::corrupt_file, fmt::format("{}: not valid JSON: {}", source, error.what()));
  }
  if (!root.is_object()) return Status(ErrorCode::corrupt_file, fmt::format("{}: not a JSON object", source));
  const auto found = root.find("chat_template");
  if (found == root.end() || found->is_null()) return std::optional<std::string>();
  if (found->is_string()) return std::optional<std::string>(found->get<std::string>());
  if (found->is_array()) {
    // Newer transformers save several named templates (e.g. "default", "tool_use"); chat uses "default".
    const auto string_field = [](const Json& object, const char* key) -> const std::string* {
      if (!object.is_object()) return nullptr;
      const auto field = object.find(key);
      return field != object.end() && field->is_string() ? &field->get_ref<const std::string&>() : nullptr;
    };
    for (const Json& entry : *found) {
      const std::string* name = string_field(entry, "name");
      const std::string* jinja = string_field(entry, "template");
      if (name == nullptr || jinja == nullptr)
        return Status(ErrorCode::corrupt_file,
                      fmt::format("{}: chat_template list entries must be {{\"name\": string, \"template\": string}}",
                                  source));
      if (*name == "default") return std::optional<std::string>(*jinja);
    }
    return std::optional<std::string>();
  }
  return Status(ErrorCode::corrupt_file,
                fmt::format("{}: chat_template is {}, not a string or a list of named templates", source,
                            found->type_name()));
}

}  // namespace ember
