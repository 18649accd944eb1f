// Chat templates: detection from real Hugging Face template sources, and prompts that match
// llama.cpp's llm_chat_apply_template output (its tests/test-chat-template.cpp expectations).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "ember/chat_template.h"

namespace ember {
namespace {

// llama.cpp's test conversation: the spaces around one reply show which formats trim.
const std::vector<ChatMessage> kConversation = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};

// Real templates, as in the models' tokenizer_config.json.
constexpr std::string_view kQwen2Template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou "
    "are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{"
    " '<|im_start|>assistant\\n' }}{% endif %}";
constexpr std::string_view kOpenHermesTemplate =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
constexpr std::string_view kLlama3InstructTemplate =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
    "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
constexpr std::string_view kLlama2ChatTemplate =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message ="
    " false %}{% endif %}{% "
    "for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message +"
    " '\\n<</SYS>>\\n\\n' "
    "+ message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' "
    "%}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + "
    "content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
// Mistral-7B-Instruct-v0.2: [INST] without <<SYS>>, which llama.cpp treats as plain llama2.
constexpr std::string_view kMistralV02Template =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are "
    "supported!') }}{% endif %}{% endfor %}";
// TheBloke/FusionNet_34Bx2_MoE: "<s>" before each later [INST].
constexpr std::string_view kFusionNetTemplate =
    "{%- for idx in range(0, messages|length) -%}\n{%- if messages[idx]['role'] == 'user' -%}\n{%- if idx > 1 -%}\n{{- "
    "bos_token + '[INST] ' + messages[idx]['content'] + ' [/INST]' -}}\n{%- else -%}\n{{- messages[idx]['content'] + ' "
    "[/INST]' -}}\n{%- endif -%}\n{% elif messages[idx]['role'] == 'system' %}\n{{- '[INST] <<SYS>>\\n' + "
    "messages[idx]['content'] + '\\n<</SYS>>\\n\\n' -}}\n{%- elif messages[idx]['role'] == 'assistant' -%}\n{{- ' '  + "
    "messages[idx]['content'] + ' ' + eos_token -}}\n{% endif %}\n{% endfor %}";
constexpr std::string_view kGemmaTemplate =
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for "
    "message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "(message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role ="
    " message['role'] %}{% endif %}{{ "
    "'<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if "
    "add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";
constexpr std::string_view kPhi3Template =
    "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + message['content'] + "
    "'<|end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{"
    " eos_token }}{% endif %}";
// Shortened from Mistral Small 3 (tool calls left out).
constexpr std::string_view kMistralSmallV7Template =
    "{{- bos_token }}{%- for message in messages %}{%- if message['role'] == 'system' %}{{- '[SYSTEM_PROMPT]' + "
    "message['content'] + '[/SYSTEM_PROMPT]' }}{%- elif message['role'] == 'user' %}{{- '[INST]' +"
    " message['content'] + "
    "'[/INST]' }}{%- elif message['role'] == 'assistant' %}{{- message['content'] + eos_token }}{%-"
    " endif %}{%- endfor %}";

std::string render(std::string_view name, bool add_assistant_prefix = true) {
  auto chat = ChatTemplate::named(name);
  EXPECT_TRUE(chat.ok()) << chat.status().message();
  return chat.ok() ? chat->apply(kConversation, add_assistant_prefix) : std::string();
}

std::string detected_name(std::string_view source) {
  auto chat = ChatTemplate::detect(source);
  EXPECT_TRUE(chat.ok()) << chat.status().message();
  return chat.ok() ? std::string(chat->name()) : std::string();
}

TEST(ChatTemplate, ChatMl) {
  EXPECT_EQ(render("chatml"),
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
            "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
            "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render("chatml", false).size(), render("chatml").size() - std::string("<|im_start|>assistant\n").size());
  EXPECT_EQ(ChatTemplate::named("chatml")->end_of_turn(), "<|im_end|>");
}

TEST(ChatTemplate, Llama3TrimsAndLeavesBosToTheTokenizer) {
  EXPECT_EQ(render("llama3"),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(ChatTemplate::named("llama3")->end_of_turn(), "<|eot_id|>");
}

TEST(ChatTemplate, Llama2Family) {
  // No assistant prefix: a user turn already ends with [/INST].
  EXPECT_EQ(render("llama2"), render("llama2", false));
  EXPECT_EQ(render("llama2"),
            "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an "
            "assistant   </s>[INST] Another question [/INST]");
  EXPECT_EQ(render("llama2-sys"),
            "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you "
            "[/INST]   I am an assistant   </s>[INST] Another question [/INST]");
  EXPECT_EQ(render("llama2-sys-bos"),
            "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s><s>[INST] Who are you "
            "[/INST]   I am an assistant   </s><s>[INST] Another question [/INST]");
  EXPECT_EQ(render("llama2-sys-strip"),
            "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you "
            "[/INST]I am an assistant</s>[INST] Another question [/INST]");
  EXPECT_EQ(ChatTemplate::named("llama2-sys")->kind(), ChatTemplateKind::llama2);
  EXPECT_EQ(ChatTemplate::named("llama2")->end_of_turn(), "</s>");
}

TEST(ChatTemplate, MistralFamily) {
  EXPECT_EQ(render("mistral-v1"),
            " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]    I am an "
            "assistant   </s> [INST] Another question [/INST]");
  EXPECT_EQ(render("mistral-v3"),
            "[INST] You are a helpful assistant\n\nHello[/INST] Hi there</s>[INST] Who are you[/INST] I am an "
            "assistant</s>[INST] Another question[/INST]");
  EXPECT_EQ(render("mistral-v3-tekken"),
            "[INST]You are a helpful assistant\n\nHello[/INST]Hi there</s>[INST]Who are you[/INST]   I am an "
            "assistant   </s>[INST]Another question[/INST]");
  EXPECT_EQ(render("mistral-v7"),
            "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] Hello[/INST] Hi there</s>[INST] Who are "
            "you[/INST]    I am an assistant   </s>[INST] Another question[/INST]");
  EXPECT_EQ(ChatTemplate::named("mistral-v7")->kind(), ChatTemplateKind::mistral);
}

TEST(ChatTemplate, GemmaMergesTheSystemTextIntoTheFirstUserTurn) {
  EXPECT_EQ(render("gemma"),
            "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi "
            "there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an "
            "assistant<end_of_turn>\n<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(ChatTemplate::named("gemma")->end_of_turn(), "<end_of_turn>");
}

TEST(ChatTemplate, Phi3AndZephyr) {
  EXPECT_EQ(render("phi3"),
            "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n"
            "<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother "
            "question<|end|>\n<|assistant|>\n");
  EXPECT_EQ(render("zephyr"),
            "<|system|>\nYou are a helpful assistant<|endoftext|>\n<|user|>\nHello<|endoftext|>\n<|assistant|>\nHi "
            "there<|endoftext|>\n<|user|>\nWho are you<|endoftext|>\n<|assistant|>\n   I am an assistant   "
            "<|endoftext|>\n<|user|>\nAnother question<|endoftext|>\n<|assistant|>\n");
  EXPECT_EQ(ChatTemplate::named("phi3")->end_of_turn(), "<|end|>");
  EXPECT_EQ(ChatTemplate::named("zephyr")->end_of_turn(), "<|endoftext|>");
}

TEST(ChatTemplate, DetectsRealTemplates) {
  EXPECT_EQ(detected_name(kQwen2Template), "chatml");
  EXPECT_EQ(detected_name(kOpenHermesTemplate), "chatml");
  EXPECT_EQ(detected_name(kLlama3InstructTemplate), "llama3");
  // Meta's template puts bos_token before every [INST] and strips content; llama.cpp lets the strip win.
  EXPECT_EQ(detected_name(kLlama2ChatTemplate), "llama2-sys-strip");
  EXPECT_EQ(detected_name(kMistralV02Template), "llama2");
  EXPECT_EQ(detected_name(kFusionNetTemplate), "llama2-sys-bos");
  EXPECT_EQ(detected_name(kMistralSmallV7Template), "mistral-v7");
  EXPECT_EQ(detected_name(kGemmaTemplate), "gemma");
  EXPECT_EQ(detected_name(kPhi3Template), "phi3");
  // llama.cpp takes a template naming both <|user|> and <|assistant|> for GLM-Edge or Falcon 3, so only one that
  // builds the role tags from message['role'] reaches zephyr.
  EXPECT_EQ(detected_name("{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|endoftext|>' }}"
                          "{{ '<|user|>' }}"),
            "zephyr");
  EXPECT_EQ(ChatTemplate::detect(kLlama3InstructTemplate)->kind(), ChatTemplateKind::llama3);
  EXPECT_EQ(detected_name("chatml"), "chatml");  // a bare name, as llama.cpp also accepts
}

TEST(ChatTemplate, DetectRejectsUnknownTemplates) {
  auto unknown = ChatTemplate::detect("{% for message in messages %}{{ message['content'] }}{% endfor %}");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), ErrorCode::unsupported);
  EXPECT_NE(unknown.status().message().find("matches none"), std::string::npos) << unknown.status().message();
  EXPECT_NE(unknown.status().message().find("chatml, llama2"), std::string::npos) << unknown.status().message();
  EXPECT_NE(unknown.status().message().find("llama3"), std::string::npos) << unknown.status().message();

  // Phi-4 says <|im_start|> too, but its turns differ from ChatML: recognised, and refused by name.
  auto phi4 = ChatTemplate::detect("{% for m in messages %}{{'<|im_start|>' + m['role'] + '<|im_sep|>'}}{% endfor %}");
  ASSERT_FALSE(phi4.ok());
  EXPECT_NE(phi4.status().message().find("'phi4'"), std::string::npos) << phi4.status().message();
}

TEST(ChatTemplate, NamedRejectsUnknownNamesListingTheKnownOnes) {
  auto bad = ChatTemplate::named("vicuna2");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::invalid_argument);
  for (std::string_view name : {"'vicuna2'", "chatml", "llama2", "llama3", "mistral-v7", "gemma", "phi3", "zephyr"})
    EXPECT_NE(bad.status().message().find(name), std::string::npos) << name << ": " << bad.status().message();
}

class ChatTemplateConfig : public ::testing::Test {
 protected:
  ChatTemplateConfig()
      : folder_(std::filesystem::temp_directory_path() / ("ember_chat_" + std::to_string(std::random_device{}()))) {
    std::filesystem::create_directories(folder_);
  }
  ~ChatTemplateConfig() override { std::filesystem::remove_all(folder_); }

  std::filesystem::path write(std::string_view json) {
    const auto path = folder_ / "tokenizer_config.json";
    std::ofstream(path, std::ios::binary) << json;
    return path;
  }

  std::filesystem::path folder_;
};

TEST_F(ChatTemplateConfig, ReadsTheTemplateString) {
  auto source = read_hf_chat_template(write(R"({"bos_token": "<s>", "chat_template": "{{ '<|im_start|>' }}"})"));
  ASSERT_TRUE(source.ok()) << source.status().message();
  ASSERT_TRUE(source->has_value());
  EXPECT_EQ(source->value(), "{{ '<|im_start|>' }}");
}

TEST_F(ChatTemplateConfig, TakesTheDefaultOfNamedTemplates) {
  auto source = read_hf_chat_template(write(
      R"({"chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "chat"}]})"));
  ASSERT_TRUE(source.ok()) << source.status().message();
  ASSERT_TRUE(source->has_value());
  EXPECT_EQ(source->value(), "chat");
}

TEST_F(ChatTemplateConfig, NoTemplateIsNotAnError) {
  auto source = read_hf_chat_template(write(R"({"bos_token": "<s>"})"));
  ASSERT_TRUE(source.ok()) << source.status().message();
  EXPECT_FALSE(source->has_value());
}

TEST_F(ChatTemplateConfig, MalformedJsonIsAnErrorNamingTheFile) {
  const auto path = write(R"({"chat_template": "unterminated)");
  auto source = read_hf_chat_template(path);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), ErrorCode::corrupt_file);
  EXPECT_NE(source.status().message().find(path.string()), std::string::npos) << source.status().message();

  auto wrong_type = read_hf_chat_template(write(R"({"chat_template": 42})"));
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_NE(wrong_type.status().message().find("tokenizer_config.json"), std::string::npos);
}

}  // namespace
}  // namespace ember
