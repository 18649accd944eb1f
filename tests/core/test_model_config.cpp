#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "ember/model_config.h"
#include "model_builder.h"

namespace ember {
namespace {

using testing::ConfigLayout;
using testing::HfModelSpec;
using testing::ScratchDir;

const std::filesystem::path kDemo = std::filesystem::path(EMBER_TEST_DATA_DIR) / "demo-fortunes-7m";

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

const GgufValue* find_key(const std::vector<std::pair<std::string, GgufValue>>& keys, std::string_view key) {
  for (const auto& [name, value] : keys)
    if (name == key) return &value;
  return nullptr;
}

void expect_error(const Result<ModelConfig>& config, std::initializer_list<std::string_view> phrases,
                  std::optional<ErrorCode> code = ErrorCode::invalid_argument) {
  ASSERT_FALSE(config.ok());
  if (code) {
    EXPECT_EQ(config.status().code(), *code) << config.status().message();
  }
  for (std::string_view phrase : phrases)
    EXPECT_NE(config.status().message().find(phrase), std::string::npos) << config.status().message();
}

TEST(ModelConfig, ReadsTheDemoModelsTransformers5Config) {
  auto config = read_model_config(kDemo);
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->architecture, Architecture::llama);
  EXPECT_EQ(config->name, "demo-fortunes-7m");
  EXPECT_EQ(config->vocab_size, 4096);
  EXPECT_EQ(config->hidden_size, 288);
  EXPECT_EQ(config->layer_count, 6);
  EXPECT_EQ(config->head_count, 6);
  EXPECT_EQ(config->kv_head_count, 2);
  EXPECT_EQ(config->head_dim, 48);
  EXPECT_EQ(config->ffn_size, 768);
  EXPECT_EQ(config->context_length, 256);
  EXPECT_EQ(config->rope_theta, 10000.0f);
  EXPECT_EQ(config->rope_scaling, RopeScaling::none);
  EXPECT_EQ(config->norm_eps, 1e-5f);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_FALSE(config->attention_bias);
  EXPECT_EQ(config->bos_token_id, 0);
  EXPECT_EQ(config->eos_token_id, 1);
}

TEST(ModelConfig, DemoConfigInTheTransformers4LayoutReadsTheSame) {
  ScratchDir dir;
  auto json = nlohmann::json::parse(read_text(kDemo / "config.json"));
  json["rope_theta"] = json["rope_parameters"]["rope_theta"];
  json["rope_scaling"] = nullptr;
  json.erase("rope_parameters");
  json["torch_dtype"] = json["dtype"];
  json.erase("dtype");
  json.erase("head_dim");
  const auto folder = dir / "demo-fortunes-7m";
  std::filesystem::create_directories(folder);
  testing::write_file(folder / "config.json", json.dump(2));

  auto from_v4 = read_model_config(folder / "config.json");
  auto from_v5 = read_model_config(kDemo / "config.json");
  ASSERT_TRUE(from_v4.ok()) << from_v4.status().message();
  ASSERT_TRUE(from_v5.ok()) << from_v5.status().message();
  EXPECT_EQ(from_v4.value(), from_v5.value());
}

TEST(ModelConfig, BothLayoutsOfEveryArchitectureGiveTheSameConfig) {
  ScratchDir dir;
  HfModelSpec llama;
  llama.layer_count = 3;
  llama.rope_theta = 500000.0f;
  llama.linear_rope_factor = 4.0f;
  HfModelSpec mistral = llama;
  mistral.model_type = "mistral";
  mistral.linear_rope_factor.reset();
  HfModelSpec qwen2;
  qwen2.architecture = Architecture::qwen2;
  qwen2.tie_word_embeddings = true;
  qwen2.norm_eps = 1e-6f;
  qwen2.eos_token_id.reset();
  HfModelSpec gpt2;
  gpt2.architecture = Architecture::gpt2;
  gpt2.ffn_size = 4 * gpt2.hidden_size;
  gpt2.tie_word_embeddings = true;
  HfModelSpec gpt2_inner = gpt2;
  gpt2_inner.ffn_size = 40;
  gpt2_inner.tie_word_embeddings = false;

  int index = 0;
  for (const HfModelSpec& base : {llama, mistral, qwen2, gpt2, gpt2_inner}) {
    const ModelConfig expected = testing::expected_config(base, "m" + std::to_string(index));
    for (ConfigLayout layout : {ConfigLayout::transformers4, ConfigLayout::transformers5}) {
      SCOPED_TRACE(testing::config_json(base));
      HfModelSpec spec = base;
      spec.layout = layout;
      const auto folder = dir / ("m" + std::to_string(index));
      std::filesystem::create_directories(folder);
      testing::write_file(folder / "config.json", testing::config_json(spec));
      auto config = read_model_config(folder);
      ASSERT_TRUE(config.ok()) << config.status().message();
      EXPECT_EQ(config.value(), expected);
    }
    ++index;
  }
}

TEST(ModelConfig, Gpt2DefaultsAndAlternativeKeys) {
  auto config = parse_model_config(
      R"({"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_ctx": 1024,
          "n_inner": null, "bos_token_id": 50256, "eos_token_id": 50256})",
      "gpt2/config.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->ffn_size, 4 * 768);
  EXPECT_EQ(config->context_length, 1024);
  EXPECT_EQ(config->head_dim, 64);
  EXPECT_EQ(config->kv_head_count, 12);
  EXPECT_EQ(config->norm_eps, 1e-5f);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_TRUE(config->attention_bias);
}

TEST(ModelConfig, ListsOfEosIdsKeepTheFirstAndExplicitHeadDimIsKept) {
  auto config = parse_model_config(
      R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
          "num_key_value_heads": 4, "head_dim": 32, "intermediate_size": 8, "max_position_embeddings": 16,
          "eos_token_id": [7, 8, 9]})",
      "x/config.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->eos_token_id, 7);
  EXPECT_FALSE(config->bos_token_id.has_value());
  EXPECT_EQ(config->head_dim, 32);
  EXPECT_EQ(config->norm_eps, 1e-6f);  // transformers' default when rms_norm_eps is absent
}

constexpr std::string_view kLlamaBase =
    R"("model_type": "llama", "vocab_size": 10, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
       "num_key_value_heads": 2, "intermediate_size": 8, "max_position_embeddings": 16)";

std::string llama_with(std::string_view extra) {
  std::string text = "{" + std::string(kLlamaBase);
  if (!extra.empty()) text += ", " + std::string(extra);
  return text + "}";
}

TEST(ModelConfig, InvalidConfigsNameTheFileAndTheKey) {
  ScratchDir dir;
  struct Case {
    std::string text;
    std::vector<std::string_view> phrases;
    ErrorCode code = ErrorCode::invalid_argument;
  };
  const Case cases[] = {
      {R"({"model_type": "llama", "vocab_size": 10})", {"hidden_size is missing"}},
      {llama_with(R"("num_attention_heads": 5)"), {"num_attention_heads (5) does not divide hidden_size (64)"}},
      {llama_with(R"("num_key_value_heads": 3)"), {"num_key_value_heads (3) does not divide num_attention_heads (4)"}},
      {llama_with(R"("num_hidden_layers": 0)"), {"num_hidden_layers is 0; it must be positive"}},
      {llama_with(R"("vocab_size": -4)"), {"vocab_size is -4; it must be positive"}},
      {llama_with(R"("hidden_size": "64")"), {"hidden_size is \"64\", not an integer"}},
      {llama_with(R"("head_dim": 15)"), {"head_dim (15) is odd"}},
      {llama_with(R"("rope_scaling": {"rope_type": "yarn", "factor": 4.0})"), {"'yarn' rope scaling"}, ErrorCode::unsupported},
      {llama_with(R"("rope_parameters": {"rope_type": "llama3", "factor": 8.0, "rope_theta": 5e5})"),
       {"rope_parameters asks for 'llama3' rope scaling"}, ErrorCode::unsupported},
      {llama_with(R"("rope_scaling": {"type": "linear"})"), {"rope_scaling has linear scaling without a positive factor"}},
      {llama_with(R"("mlp_bias": true)"), {"mlp_bias"}, ErrorCode::unsupported},
      {llama_with(R"("tie_word_embeddings": 1)"), {"tie_word_embeddings is 1, not true or false"}},
      {R"({"model_type": "bert"})", {"model_type 'bert' is unsupported"}, ErrorCode::unsupported},
      {R"({"vocab_size": 3})", {"model_type is missing"}},
      {R"({"model_type": "llama",)", {"not valid JSON"}, ErrorCode::corrupt_file},
      {R"(["llama"])", {"not a JSON object"}, ErrorCode::corrupt_file},
      // Found by fuzz_model_config: GPT-2's default inner size, 4 n_embd, would overflow.
      {R"({"model_type": "gpt2", "n_embd": 6999999999999999993, "n_layer": 2, "n_head": 4, "n_positions": 128,
           "vocab_size": 256})",
       {"n_embd is too large"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    testing::write_file(dir / "config.json", c.text);
    auto config = read_model_config(dir.path());
    std::vector<std::string_view> phrases = c.phrases;
    phrases.push_back("config.json");
    ASSERT_FALSE(config.ok());
    EXPECT_EQ(config.status().code(), c.code) << config.status().message();
    for (std::string_view phrase : phrases)
      EXPECT_NE(config.status().message().find(phrase), std::string::npos) << config.status().message();
  }
}

TEST(ModelConfig, MissingFileIsAnIoError) {
  ScratchDir dir;
  expect_error(read_model_config(dir.path()), {"config.json", "cannot open"}, ErrorCode::io_error);
}

TEST(ModelConfig, LlamaGgufKeysUseLlamaCppNames) {
  ModelConfig config = testing::expected_config(HfModelSpec{}, "tiny");
  config.rope_scaling = RopeScaling::linear;
  config.rope_scaling_factor = 2.0f;
  const auto keys = gguf_metadata(config);
  const auto u = [&](std::string_view key) { return find_key(keys, key) ? find_key(keys, key)->as_uint() : std::nullopt; };
  const auto f = [&](std::string_view key) { return find_key(keys, key) ? find_key(keys, key)->as_float() : std::nullopt; };
  ASSERT_NE(find_key(keys, "general.architecture"), nullptr);
  EXPECT_EQ(*find_key(keys, "general.architecture")->as_string(), "llama");
  EXPECT_EQ(*find_key(keys, "general.name")->as_string(), "tiny");
  EXPECT_EQ(u("llama.block_count"), 2u);
  EXPECT_EQ(u("llama.context_length"), 64u);
  EXPECT_EQ(u("llama.embedding_length"), 32u);
  EXPECT_EQ(u("llama.feed_forward_length"), 48u);
  EXPECT_EQ(u("llama.attention.head_count"), 4u);
  EXPECT_EQ(u("llama.attention.head_count_kv"), 2u);
  EXPECT_EQ(u("llama.rope.dimension_count"), 8u);
  EXPECT_EQ(u("llama.vocab_size"), 64u);
  EXPECT_EQ(f("llama.rope.freq_base"), 10000.0);
  EXPECT_EQ(f("llama.attention.layer_norm_rms_epsilon"), static_cast<double>(1e-5f));
  EXPECT_EQ(*find_key(keys, "llama.rope.scaling.type")->as_string(), "linear");
  EXPECT_EQ(f("llama.rope.scaling.factor"), 2.0);
  EXPECT_EQ(u("tokenizer.ggml.bos_token_id"), 0u);
  EXPECT_EQ(u("tokenizer.ggml.eos_token_id"), 1u);
  EXPECT_EQ(find_key(keys, "llama.attention.key_length"), nullptr);  // head_dim is hidden / heads
  EXPECT_EQ(find_key(keys, "llama.attention.layer_norm_epsilon"), nullptr);
}

TEST(ModelConfig, Gpt2AndQwen2GgufKeysUseTheirArchitecturePrefix) {
  HfModelSpec gpt2_spec;
  gpt2_spec.architecture = Architecture::gpt2;
  const auto gpt2 = gguf_metadata(testing::expected_config(gpt2_spec, "g"));
  EXPECT_EQ(*find_key(gpt2, "general.architecture")->as_string(), "gpt2");
  for (std::string_view key : {"gpt2.block_count", "gpt2.context_length", "gpt2.embedding_length",
                               "gpt2.feed_forward_length", "gpt2.attention.head_count",
                               "gpt2.attention.layer_norm_epsilon"})
    EXPECT_NE(find_key(gpt2, key), nullptr) << key;
  EXPECT_EQ(find_key(gpt2, "gpt2.rope.freq_base"), nullptr);
  EXPECT_EQ(find_key(gpt2, "gpt2.attention.layer_norm_rms_epsilon"), nullptr);

  HfModelSpec qwen2_spec;
  qwen2_spec.architecture = Architecture::qwen2;
  const auto qwen2 = gguf_metadata(testing::expected_config(qwen2_spec, "q"));
  EXPECT_EQ(*find_key(qwen2, "general.architecture")->as_string(), "qwen2");
  for (std::string_view key : {"qwen2.attention.head_count_kv", "qwen2.rope.freq_base",
                               "qwen2.attention.layer_norm_rms_epsilon", "qwen2.rope.dimension_count"})
    EXPECT_NE(find_key(qwen2, key), nullptr) << key;
  for (const auto& [key, value] : qwen2)
    EXPECT_FALSE(key.starts_with("llama.")) << key;
}

TEST(ModelConfig, ExplicitHeadDimWritesKeyAndValueLengths) {
  ModelConfig config = testing::expected_config(HfModelSpec{}, "wide");
  config.head_dim = 16;  // 4 heads of 16 on a hidden size of 32
  const auto keys = gguf_metadata(config);
  ASSERT_NE(find_key(keys, "llama.attention.key_length"), nullptr);
  EXPECT_EQ(find_key(keys, "llama.attention.key_length")->as_uint(), 16u);
  EXPECT_EQ(find_key(keys, "llama.attention.value_length")->as_uint(), 16u);
  EXPECT_EQ(find_key(keys, "llama.rope.dimension_count")->as_uint(), 16u);
}

Result<ModelConfig> config_from_gguf_keys(const ScratchDir& dir, const std::vector<std::pair<std::string, GgufValue>>& keys) {
  GgufWriter writer;
  for (const auto& [key, value] : keys) writer.set(key, value);
  const auto path = dir / "keys.gguf";
  EMBER_RETURN_IF_ERROR(writer.write(path));
  auto file = GgufFile::open(path);
  if (!file) return file.status();
  return model_config_from_gguf(file.value());
}

TEST(ModelConfig, GgufKeysReadBackWithoutTensors) {
  ScratchDir dir;
  ModelConfig config = testing::expected_config(HfModelSpec{}, "keys-only");
  config.tie_word_embeddings = true;  // no output.weight in a file without tensors
  config.rope_scaling = RopeScaling::linear;
  config.rope_scaling_factor = 8.0f;
  config.head_dim = 16;
  auto read = config_from_gguf_keys(dir, gguf_metadata(config));
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_EQ(read.value(), config);
}

TEST(ModelConfig, GgufProblemsNameTheKey) {
  ScratchDir dir;
  auto keys = gguf_metadata(testing::expected_config(HfModelSpec{}, "k"));
  std::erase_if(keys, [](const auto& kv) { return kv.first == "llama.embedding_length"; });
  expect_error(config_from_gguf_keys(dir, keys), {"keys.gguf", "llama.embedding_length"}, std::nullopt);

  auto unknown = gguf_metadata(testing::expected_config(HfModelSpec{}, "k"));
  unknown[0].second = GgufValue::string("falcon");
  expect_error(config_from_gguf_keys(dir, unknown), {"general.architecture 'falcon' is unsupported"}, ErrorCode::unsupported);

  auto yarn = gguf_metadata(testing::expected_config(HfModelSpec{}, "k"));
  yarn.emplace_back("llama.rope.scaling.type", GgufValue::string("yarn"));
  expect_error(config_from_gguf_keys(dir, yarn), {"llama.rope.scaling.type 'yarn'"}, ErrorCode::unsupported);

  auto odd = gguf_metadata(testing::expected_config(HfModelSpec{}, "k"));
  for (auto& [key, value] : odd)
    if (key == "llama.attention.head_count_kv") value = GgufValue::u32(3);
  expect_error(config_from_gguf_keys(dir, odd), {"keys.gguf", "num_key_value_heads (3) does not divide"});
}

}  // namespace
}  // namespace ember
