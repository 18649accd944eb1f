#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "ember/hf_to_gguf.h"
#include "ember/safetensors.h"
#include "model_builder.h"
#include "tensor_fixtures.h"

namespace ember {
namespace {

using testing::HfModelSpec;
using testing::ScratchDir;
using Keys = std::vector<std::pair<std::string, GgufValue>>;

const std::filesystem::path kDemo = std::filesystem::path(EMBER_TEST_DATA_DIR) / "demo-fortunes-7m";

Tensor matrix_of_row_ids(int64_t rows, int64_t cols, DType dtype = DType::f32) {
  Tensor t = Tensor::empty({rows, cols}, dtype).value();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t.set({r, c}, static_cast<float>(r * 10 + c));
  return t;
}

std::vector<int64_t> row_ids(const Tensor& t) {
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < t.dim(0); ++r) rows.push_back(static_cast<int64_t>(t.get({r, 0})) / 10);
  return rows;
}

TEST(HfToGguf, PermutationMatchesHandComputedRowOrders) {
  // Per head, rows [first half | second half] interleave: 0 2 1 3 for a head of 4.
  const TensorMapping q{"q", "blk.0.attn_q.weight", TensorTransform::permute_q, 2};
  auto two_heads = materialize(matrix_of_row_ids(8, 3), q);
  ASSERT_TRUE(two_heads.ok()) << two_heads.status().message();
  EXPECT_EQ(row_ids(two_heads.value()), (std::vector<int64_t>{0, 2, 1, 3, 4, 6, 5, 7}));
  EXPECT_EQ(two_heads->get({1, 2}), 22.0f);  // whole rows move: columns stay

  const TensorMapping k{"k", "blk.0.attn_k.weight", TensorTransform::permute_k, 1};
  auto head_of_six = materialize(matrix_of_row_ids(6, 2, DType::bf16), k);
  ASSERT_TRUE(head_of_six.ok()) << head_of_six.status().message();
  EXPECT_EQ(head_of_six->dtype(), DType::bf16);
  EXPECT_EQ(row_ids(head_of_six.value()), (std::vector<int64_t>{0, 3, 1, 4, 2, 5}));

  Tensor bias = Tensor::empty({4}, DType::f16).value();
  for (int64_t i = 0; i < 4; ++i) bias.set({i}, static_cast<float>(i));
  auto permuted_bias = materialize(bias, {"b", "blk.0.attn_q.bias", TensorTransform::permute_q, 1});
  ASSERT_TRUE(permuted_bias.ok()) << permuted_bias.status().message();
  EXPECT_EQ(permuted_bias->shape(), (Shape{4}));
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(permuted_bias->get({i}), (std::array<float, 4>{0, 2, 1, 3}[i]));
}

TEST(HfToGguf, TransposeTurnsConv1DInOutIntoOutIn) {
  auto result = materialize(matrix_of_row_ids(2, 3), {"c", "blk.0.attn_qkv.weight", TensorTransform::transpose, 0});
  ASSERT_TRUE(result.ok()) << result.status().message();
  ASSERT_EQ(result->shape(), (Shape{3, 2}));
  EXPECT_TRUE(result->is_contiguous());
  for (int64_t o = 0; o < 3; ++o)
    for (int64_t i = 0; i < 2; ++i) EXPECT_EQ(result->get({o, i}), static_cast<float>(i * 10 + o));
}

TEST(HfToGguf, UntransformedTensorsStayViews) {
  const Tensor source = matrix_of_row_ids(4, 4);
  auto result = materialize(source, {"v", "blk.0.attn_v.weight", TensorTransform::none, 0});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->buffer(), source.buffer());
}

TEST(HfToGguf, ShapesATransformCannotSplitAreErrorsNamingTheTensor) {
  auto odd = materialize(matrix_of_row_ids(6, 2), {"model.q", "blk.0.attn_q.weight", TensorTransform::permute_q, 2});
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.status().message().find("'model.q' (blk.0.attn_q.weight)"), std::string::npos) << odd.status().message();
  auto vector = materialize(Tensor::empty({4}, DType::f32).value(), {"h.c", "blk.0.ffn_up.weight", TensorTransform::transpose, 0});
  ASSERT_FALSE(vector.ok());
  EXPECT_NE(vector.status().message().find("'h.c'"), std::string::npos) << vector.status().message();
}

ModelConfig config_for(Architecture architecture, bool tied = false, bool attention_bias = false) {
  HfModelSpec spec;
  spec.architecture = architecture;
  spec.tie_word_embeddings = tied;
  spec.attention_bias = attention_bias;
  spec.layer_count = 4;
  return testing::expected_config(spec, "m");
}

TEST(HfToGguf, TensorNamesMapAsLlamaCppNamesThem) {
  struct Case {
    ModelConfig config;
    std::string hf, gguf;
    TensorTransform transform;
    int64_t heads;
  };
  const ModelConfig llama = config_for(Architecture::llama, false, true), qwen2 = config_for(Architecture::qwen2);
  const ModelConfig gpt2 = config_for(Architecture::gpt2);
  const Case cases[] = {
      {llama, "model.embed_tokens.weight", "token_embd.weight", TensorTransform::none, 0},
      {llama, "model.layers.3.input_layernorm.weight", "blk.3.attn_norm.weight", TensorTransform::none, 0},
      {llama, "model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight", TensorTransform::permute_q, 4},
      {llama, "model.layers.0.self_attn.q_proj.bias", "blk.0.attn_q.bias", TensorTransform::permute_q, 4},
      {llama, "model.layers.1.self_attn.k_proj.weight", "blk.1.attn_k.weight", TensorTransform::permute_k, 2},
      {llama, "model.layers.1.self_attn.v_proj.weight", "blk.1.attn_v.weight", TensorTransform::none, 0},
      {llama, "model.layers.2.self_attn.o_proj.weight", "blk.2.attn_output.weight", TensorTransform::none, 0},
      {llama, "model.layers.2.self_attn.o_proj.bias", "blk.2.attn_output.bias", TensorTransform::none, 0},
      {llama, "model.layers.2.post_attention_layernorm.weight", "blk.2.ffn_norm.weight", TensorTransform::none, 0},
      {llama, "model.layers.2.mlp.gate_proj.weight", "blk.2.ffn_gate.weight", TensorTransform::none, 0},
      {llama, "model.layers.2.mlp.up_proj.weight", "blk.2.ffn_up.weight", TensorTransform::none, 0},
      {llama, "model.layers.2.mlp.down_proj.weight", "blk.2.ffn_down.weight", TensorTransform::none, 0},
      {llama, "model.norm.weight", "output_norm.weight", TensorTransform::none, 0},
      {llama, "lm_head.weight", "output.weight", TensorTransform::none, 0},
      {qwen2, "model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight", TensorTransform::none, 0},
      {qwen2, "model.layers.0.self_attn.k_proj.bias", "blk.0.attn_k.bias", TensorTransform::none, 0},
      {gpt2, "transformer.wte.weight", "token_embd.weight", TensorTransform::none, 0},
      {gpt2, "wpe.weight", "position_embd.weight", TensorTransform::none, 0},
      {gpt2, "h.1.ln_1.bias", "blk.1.attn_norm.bias", TensorTransform::none, 0},
      {gpt2, "transformer.h.1.attn.c_attn.weight", "blk.1.attn_qkv.weight", TensorTransform::transpose, 0},
      {gpt2, "h.1.attn.c_attn.bias", "blk.1.attn_qkv.bias", TensorTransform::none, 0},
      {gpt2, "h.0.attn.c_proj.weight", "blk.0.attn_output.weight", TensorTransform::transpose, 0},
      {gpt2, "h.0.ln_2.weight", "blk.0.ffn_norm.weight", TensorTransform::none, 0},
      {gpt2, "h.3.mlp.c_fc.weight", "blk.3.ffn_up.weight", TensorTransform::transpose, 0},
      {gpt2, "h.3.mlp.c_proj.bias", "blk.3.ffn_down.bias", TensorTransform::none, 0},
      {gpt2, "transformer.ln_f.weight", "output_norm.weight", TensorTransform::none, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.hf);
    auto mapping = map_hf_tensor(c.config, c.hf);
    ASSERT_TRUE(mapping.ok()) << mapping.status().message();
    ASSERT_TRUE(mapping->has_value());
    EXPECT_EQ(mapping.value()->hf_name, c.hf);
    EXPECT_EQ(mapping.value()->gguf_name, c.gguf);
    EXPECT_EQ(mapping.value()->transform, c.transform);
    EXPECT_EQ(mapping.value()->heads, c.heads);
  }
}

TEST(HfToGguf, BuffersAndTiedHeadsAreSkippedAndStrangersRejected) {
  const ModelConfig llama = config_for(Architecture::llama, true), gpt2 = config_for(Architecture::gpt2, true);
  for (auto [config, name] : {std::pair{llama, "model.layers.0.self_attn.rotary_emb.inv_freq"}, {llama, "lm_head.weight"},
                              {gpt2, "h.0.attn.bias"}, {gpt2, "transformer.h.2.attn.masked_bias"}, {gpt2, "lm_head.weight"}}) {
    auto mapping = map_hf_tensor(config, name);
    ASSERT_TRUE(mapping.ok()) << mapping.status().message();
    EXPECT_FALSE(mapping->has_value()) << name;
  }
  const std::pair<const char*, const char*> errors[] = {
      {"model.layers.0.self_attn.q_norm.weight", "tensor 'model.layers.0.self_attn.q_norm.weight' is not part of a llama model"},
      {"model.layers.4.mlp.up_proj.weight", "is in layer 4, but the model has 4 layers"},
      {"model.layers.x.mlp.up_proj.weight", "'model.layers.x.mlp.up_proj.weight' is not part"},
      {"model.layers.0.self_attn.q_proj.bias", "config.json gives the attention no bias"},
      {"vision_tower.weight", "'vision_tower.weight' is not part"},
  };
  for (auto [name, phrase] : errors) {
    auto mapping = map_hf_tensor(llama, name);
    ASSERT_FALSE(mapping.ok()) << name;
    EXPECT_NE(mapping.status().message().find(phrase), std::string::npos) << mapping.status().message();
  }
}

std::vector<std::string> names_of(const HfModelSpec& spec) {
  std::vector<std::string> names;
  for (const auto& [name, shape] : testing::hf_tensor_shapes(spec)) names.push_back(name);
  return names;
}

TEST(HfToGguf, WholeModelMappingIsOrderedAndComplete) {
  HfModelSpec spec;
  spec.include_buffers = true;
  std::vector<std::string> names = names_of(spec);
  std::reverse(names.begin(), names.end());
  const ModelConfig config = testing::expected_config(spec, "m");
  auto mappings = map_hf_tensors(config, names);
  ASSERT_TRUE(mappings.ok()) << mappings.status().message();
  ASSERT_EQ(mappings->size(), 2 + 9 * 2 + 1u);
  EXPECT_EQ(mappings->front().gguf_name, "token_embd.weight");
  EXPECT_EQ((*mappings)[1].gguf_name, "blk.0.attn_norm.weight");
  EXPECT_EQ((*mappings)[10].gguf_name, "blk.1.attn_norm.weight");
  EXPECT_EQ(mappings->back().gguf_name, "output.weight");

  std::vector<std::string> incomplete = names_of(spec);
  std::erase(incomplete, "model.layers.1.mlp.up_proj.weight");
  auto missing = map_hf_tensors(config, incomplete);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no tensor for blk.1.ffn_up.weight"), std::string::npos) << missing.status().message();

  HfModelSpec gpt2;
  gpt2.architecture = Architecture::gpt2;
  std::vector<std::string> doubled = names_of(gpt2);
  doubled.push_back("wte.weight");  // also there as transformer.wte.weight
  auto duplicate = map_hf_tensors(testing::expected_config(gpt2, "g"), doubled);
  ASSERT_FALSE(duplicate.ok());
  EXPECT_NE(duplicate.status().message().find("both map to token_embd.weight"), std::string::npos) << duplicate.status().message();
}

// The GGUF value at `element`, computed from the Hugging Face tensor by index arithmetic
// rather than through materialize().
float expected_gguf_value(const Tensor& hf, const TensorMapping& mapping, int64_t element) {
  switch (mapping.transform) {
    case TensorTransform::none: return hf.get_flat(element);
    case TensorTransform::transpose: {
      const int64_t in = hf.dim(0), out_row = element / in, in_row = element % in;
      return hf.get({in_row, out_row});
    }
    case TensorTransform::permute_q:
    case TensorTransform::permute_k: {
      const int64_t cols = hf.rank() == 2 ? hf.dim(1) : 1;
      const int64_t row = element / cols, col = element % cols;
      const int64_t head_dim = hf.dim(0) / mapping.heads, half = head_dim / 2;
      const int64_t head = row / head_dim, pair = (row % head_dim) / 2, side = row % 2;
      return hf.get_flat((head * head_dim + side * half + pair) * cols + col);
    }
  }
  return 0.0f;
}

Shape expected_gguf_shape(const Tensor& hf, const TensorMapping& mapping) {
  return mapping.transform == TensorTransform::transpose ? Shape{hf.dim(1), hf.dim(0)} : hf.shape();
}

// HF folder → (config, mapped tensors, tokenizer keys) → GGUF file → read back: the same
// config, and every tensor equal to the Hugging Face one moved by index arithmetic.
void check_round_trip(const HfModelSpec& spec) {
  testing::SeededRng rng;
  ScratchDir dir;
  const auto folder = dir / "tiny-model";
  const testing::HfModel hf = testing::write_random_hf_model(folder, spec, rng);

  auto config = read_model_config(folder);
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config.value(), testing::expected_config(spec, "tiny-model"));
  auto weights = SafetensorsModel::open(folder);
  ASSERT_TRUE(weights.ok()) << weights.status().message();
  auto mappings = map_hf_tensors(config.value(), weights->tensor_names());
  ASSERT_TRUE(mappings.ok()) << mappings.status().message();
  auto tokenizer = tokenizer_metadata_from_json(folder / "tokenizer.json", config.value());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();

  GgufWriter writer;
  for (auto& [key, value] : gguf_metadata(config.value())) writer.set(key, value);
  for (auto& [key, value] : tokenizer.value()) writer.set(key, value);
  for (const TensorMapping& mapping : mappings.value()) {
    auto tensor = materialize(weights->tensor(mapping.hf_name).value(), mapping);
    ASSERT_TRUE(tensor.ok()) << tensor.status().message();
    ASSERT_TRUE(writer.add_tensor(mapping.gguf_name, tensor.value()).ok());
  }
  const auto gguf_path = dir / "tiny-model.gguf";
  const Status written = writer.write(gguf_path);
  ASSERT_TRUE(written.ok()) << written.message();

  auto gguf = GgufFile::open(gguf_path);
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto config_back = model_config_from_gguf(gguf.value());
  ASSERT_TRUE(config_back.ok()) << config_back.status().message();
  EXPECT_EQ(config_back.value(), config.value());
  auto tokens = gguf->find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->as_array()->values.size(), static_cast<size_t>(spec.vocab_size));

  EXPECT_EQ(gguf->tensors().size(), mappings->size());
  for (const TensorMapping& mapping : mappings.value()) {
    SCOPED_TRACE(mapping.hf_name + " -> " + mapping.gguf_name);
    const Tensor& source = hf.tensor(mapping.hf_name);
    auto stored = gguf->tensor(mapping.gguf_name);
    ASSERT_TRUE(stored.ok()) << stored.status().message();
    EXPECT_EQ(stored->dtype(), spec.dtype);
    ASSERT_EQ(stored->shape(), expected_gguf_shape(source, mapping));
    int64_t mismatches = 0;
    for (int64_t e = 0; e < stored->elements(); ++e)
      mismatches += stored->get_flat(e) != expected_gguf_value(source, mapping, e);
    EXPECT_EQ(mismatches, 0);
  }
}

TEST(HfToGguf, LlamaRoundTripsThroughGguf) {
  HfModelSpec spec;
  spec.dtype = DType::f16;
  spec.shards = 2;
  spec.layout = testing::ConfigLayout::transformers5;
  spec.include_buffers = true;
  spec.linear_rope_factor = 2.0f;
  check_round_trip(spec);
}

TEST(HfToGguf, LlamaWithAttentionBiasesRoundTripsThroughGguf) {
  HfModelSpec spec;
  spec.dtype = DType::bf16;
  spec.attention_bias = true;
  spec.head_count = 2;
  spec.kv_head_count = 1;
  check_round_trip(spec);
}

TEST(HfToGguf, Qwen2WithBiasesAndTiedEmbeddingsRoundTripsThroughGguf) {
  HfModelSpec spec;
  spec.architecture = Architecture::qwen2;
  spec.dtype = DType::bf16;
  spec.tie_word_embeddings = true;
  spec.include_buffers = true;
  check_round_trip(spec);
}

TEST(HfToGguf, Gpt2RoundTripsThroughGguf) {
  HfModelSpec spec;
  spec.architecture = Architecture::gpt2;
  spec.ffn_size = 4 * spec.hidden_size;
  spec.tie_word_embeddings = true;
  spec.include_buffers = true;
  check_round_trip(spec);
  spec.gpt2_transformer_prefix = false;
  spec.tie_word_embeddings = false;
  spec.ffn_size = 24;
  spec.dtype = DType::f16;
  check_round_trip(spec);
}

const GgufValue* find_key(const Keys& keys, std::string_view key) {
  for (const auto& [name, value] : keys)
    if (name == key) return &value;
  return nullptr;
}

std::string string_key(const Keys& keys, std::string_view key) {
  const GgufValue* value = find_key(keys, key);
  return value != nullptr && value->as_string() != nullptr ? *value->as_string() : "(absent)";
}

std::vector<int64_t> int_array(const Keys& keys, std::string_view key) {
  std::vector<int64_t> values;
  if (const GgufValue* value = find_key(keys, key); value != nullptr && value->as_array() != nullptr)
    for (const GgufValue& item : value->as_array()->values) values.push_back(item.as_int().value_or(-999));
  return values;
}

std::optional<bool> bool_key(const Keys& keys, std::string_view key) {
  const GgufValue* value = find_key(keys, key);
  return value != nullptr ? value->as_bool() : std::nullopt;
}

std::optional<int64_t> int_key(const Keys& keys, std::string_view key) {
  const GgufValue* value = find_key(keys, key);
  return value != nullptr ? value->as_int() : std::nullopt;
}

TEST(TokenizerGguf, DemoTokenizerGivesLlama3ByteLevelKeys) {
  auto config = read_model_config(kDemo);
  ASSERT_TRUE(config.ok()) << config.status().message();
  auto keys = tokenizer_metadata_from_json(kDemo / "tokenizer.json", config.value());
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  EXPECT_EQ(string_key(*keys, "tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(string_key(*keys, "tokenizer.ggml.pre"), "llama-bpe");
  const GgufArray* tokens = find_key(*keys, "tokenizer.ggml.tokens")->as_array();
  ASSERT_EQ(tokens->values.size(), 4096u);
  EXPECT_EQ(*tokens->values[0].as_string(), "<|begin_of_text|>");
  EXPECT_EQ(*tokens->values[1].as_string(), "<|end_of_text|>");
  EXPECT_EQ(*tokens->values[2].as_string(), "!");
  const std::vector<int64_t> types = int_array(*keys, "tokenizer.ggml.token_type");
  ASSERT_EQ(types.size(), 4096u);
  EXPECT_EQ(types[0], 3);
  EXPECT_EQ(types[1], 3);
  EXPECT_EQ(std::count(types.begin(), types.end(), 1), 4094);
  const GgufArray* merges = find_key(*keys, "tokenizer.ggml.merges")->as_array();
  ASSERT_EQ(merges->values.size(), 3838u);
  EXPECT_EQ(*merges->values[0].as_string(), "\u0120 t");
  EXPECT_EQ(*merges->values[1].as_string(), "h e");
  EXPECT_EQ(int_key(*keys, "tokenizer.ggml.bos_token_id"), 0);
  EXPECT_EQ(int_key(*keys, "tokenizer.ggml.eos_token_id"), 1);
  EXPECT_EQ(bool_key(*keys, "tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(bool_key(*keys, "tokenizer.ggml.add_eos_token"), false);
  EXPECT_EQ(find_key(*keys, "tokenizer.ggml.scores"), nullptr);
}

Result<Keys> keys_for(const ScratchDir& dir, const std::string& json, const ModelConfig& config) {
  testing::write_file(dir / "tokenizer.json", json);
  return tokenizer_metadata_from_json(dir / "tokenizer.json", config);
}

TEST(TokenizerGguf, PreTokenizerNamesMergeFormsAndBosComeFromTheFile) {
  ScratchDir dir;
  HfModelSpec qwen2;
  qwen2.architecture = Architecture::qwen2;
  qwen2.vocab_size = 40;
  ModelConfig config = testing::expected_config(qwen2, "q");
  config.bos_token_id.reset();  // from the known special names instead
  config.eos_token_id.reset();
  auto keys = keys_for(dir, testing::tokenizer_json(qwen2), config);
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  EXPECT_EQ(string_key(*keys, "tokenizer.ggml.pre"), "qwen2");
  EXPECT_EQ(*find_key(*keys, "tokenizer.ggml.merges")->as_array()->values[0].as_string(), "\u0120 \u0120");  // from ["Ġ", "Ġ"]
  EXPECT_EQ(bool_key(*keys, "tokenizer.ggml.add_bos_token"), false);
  EXPECT_EQ(int_key(*keys, "tokenizer.ggml.bos_token_id"), 0);
  EXPECT_EQ(int_key(*keys, "tokenizer.ggml.eos_token_id"), 1);

  HfModelSpec gpt2 = qwen2;
  gpt2.architecture = Architecture::gpt2;
  keys = keys_for(dir, testing::tokenizer_json(gpt2), testing::expected_config(gpt2, "g"));
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  EXPECT_EQ(string_key(*keys, "tokenizer.ggml.pre"), "gpt-2");
}

TEST(TokenizerGguf, IdsMissingBelowVocabSizeBecomePadding) {
  ScratchDir dir;
  HfModelSpec spec;
  spec.vocab_size = 20;
  ModelConfig config = testing::expected_config(spec, "p");
  config.vocab_size = 24;  // the embedding has rows the tokenizer does not use
  auto keys = keys_for(dir, testing::tokenizer_json(spec), config);
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  const GgufArray* tokens = find_key(*keys, "tokenizer.ggml.tokens")->as_array();
  ASSERT_EQ(tokens->values.size(), 24u);
  EXPECT_EQ(*tokens->values[23].as_string(), "[PAD23]");
  EXPECT_EQ(int_array(*keys, "tokenizer.ggml.token_type")[23], 5);
  EXPECT_EQ(int_array(*keys, "tokenizer.ggml.token_type")[19], 1);

  config.vocab_size = 200000;  // a config.json whose vocab_size is wrong by far
  keys = keys_for(dir, testing::tokenizer_json(spec), config);
  ASSERT_FALSE(keys.ok());
  EXPECT_EQ(keys.status().code(), ErrorCode::corrupt_file);
  EXPECT_NE(keys.status().message().find("ember pads at most 65536 unnamed ids"), std::string::npos) << keys.status().message();
}

TEST(TokenizerGguf, SentencePieceStyleBpeGivesLlamaKeysWithScoresAndByteTokens) {
  ScratchDir dir;
  const std::string json = R"({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true},
                     {"id": 2, "content": "</s>", "special": true}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                   {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true,
              "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x00>": 3, "<0x0A>": 4, "\u2581": 5, "a": 6, "b": 7,
                        "ab": 8, "\u2581a": 9, "\u2581ab": 10},
              "merges": ["a b", "\u2581 a", "\u2581a b"]}})";
  ModelConfig config = testing::expected_config(HfModelSpec{}, "spm");
  config.vocab_size = 12;
  config.bos_token_id = 1;
  config.eos_token_id = 2;
  auto keys = keys_for(dir, json, config);
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  EXPECT_EQ(string_key(*keys, "tokenizer.ggml.model"), "llama");
  EXPECT_EQ(string_key(*keys, "tokenizer.ggml.pre"), "default");
  EXPECT_EQ(int_array(*keys, "tokenizer.ggml.token_type"), (std::vector<int64_t>{2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 1, 5}));
  std::vector<double> scores;
  for (const GgufValue& v : find_key(*keys, "tokenizer.ggml.scores")->as_array()->values) scores.push_back(*v.as_float());
  EXPECT_EQ(scores, (std::vector<double>{0, 0, 0, 0, 0, 0, 0, 0, -1, -2, -3, 0}));
  EXPECT_EQ(find_key(*keys, "tokenizer.ggml.merges"), nullptr);
  EXPECT_EQ(int_key(*keys, "tokenizer.ggml.unknown_token_id"), 0);
  EXPECT_EQ(int_key(*keys, "tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(bool_key(*keys, "tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(bool_key(*keys, "tokenizer.ggml.add_space_prefix"), true);
}

TEST(TokenizerGguf, CorruptOrUnsupportedTokenizersAreErrorsNamingTheFile) {
  ScratchDir dir;
  HfModelSpec spec;
  spec.vocab_size = 30;
  const ModelConfig config = testing::expected_config(spec, "e");
  const auto variant = [&](auto&& change) {
    auto json = nlohmann::json::parse(testing::tokenizer_json(spec));
    change(json);
    return json.dump();
  };
  const std::tuple<std::string, const char*, ErrorCode> cases[] = {
      {"{\"model\": ", "parse error", ErrorCode::corrupt_file},
      {R"({"model": {"type": "Unigram", "vocab": []}})", "tokenizer model \"Unigram\" is unsupported", ErrorCode::unsupported},
      {R"({"model": {"type": "BPE", "vocab": {}, "merges": []}})", "without a ByteLevel pre-tokenizer or byte_fallback",
       ErrorCode::unsupported},
      {variant([](auto& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+"; }),
       "pre-tokenizer split \\w+ is not one ember knows", ErrorCode::unsupported},
      {variant([](auto& j) { j["model"]["vocab"]["zz"] = 30; }), "token 'zz' has id 30, outside the model's vocab_size 30",
       ErrorCode::corrupt_file},
      {variant([](auto& j) { j["added_tokens"][1]["id"] = 5; }), "names both", ErrorCode::corrupt_file},
      {variant([](auto& j) { j["model"]["merges"][0] = "abc"; }), "merge \"abc\" is not two tokens", ErrorCode::corrupt_file},
      {variant([](auto& j) { j["model"]["vocab"] = 3; }), "model.vocab is not an object", ErrorCode::corrupt_file},
  };
  for (const auto& [json, phrase, code] : cases) {
    SCOPED_TRACE(json.substr(0, 120));
    auto keys = keys_for(dir, json, config);
    ASSERT_FALSE(keys.ok());
    EXPECT_EQ(keys.status().code(), code) << keys.status().message();
    EXPECT_NE(keys.status().message().find((dir / "tokenizer.json").string()), std::string::npos) << keys.status().message();
    EXPECT_NE(keys.status().message().find(phrase), std::string::npos) << keys.status().message();
  }
}

}  // namespace
}  // namespace ember
