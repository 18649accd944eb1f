#include "model_builder.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <tuple>

#include <nlohmann/json.hpp>

namespace ember::testing {

namespace {

using Json = nlohmann::ordered_json;

std::string safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    default: ADD_FAILURE() << "safetensors test files hold f32, f16 or bf16, not " << dtype_name(dtype); return "?";
  }
}

Json shape_json(const Shape& shape) {
  Json dims = Json::array();
  for (int64_t d : shape.dims()) dims.push_back(d);
  return dims;
}

std::string_view torch_dtype(DType dtype) {
  return dtype == DType::f16 ? "float16" : dtype == DType::bf16 ? "bfloat16" : "float32";
}

std::string default_model_type(Architecture architecture) { return std::string(architecture_name(architecture)); }

// The regexes as tokenizer.json stores them (JSON escapes undone).
constexpr std::string_view kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

}  // namespace

ScratchDir::ScratchDir() {
  static std::atomic<int> counter{0};
  const auto base = std::filesystem::temp_directory_path();
  const uint64_t salt = fresh_seed();
  path_ = base / ("ember-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(salt % 100000));
  std::filesystem::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

std::string safetensors_bytes(std::span<const NamedTensor> tensors,
                              const std::vector<std::pair<std::string, std::string>>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) {
    Json entries = Json::object();
    for (const auto& [key, value] : metadata) entries[key] = value;
    header["__metadata__"] = entries;
  }
  std::string data;
  for (const NamedTensor& named : tensors) {
    const Tensor dense = named.tensor.contiguous().value();
    const size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(dense.read<std::byte>().value()), dense.payload_bytes());
    header[named.name] = {{"dtype", safetensors_dtype(dense.dtype())},
                          {"shape", shape_json(dense.shape())},
                          {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((static_cast<uint64_t>(text.size()) >> (8 * i)) & 0xff);
  return file + text + data;
}

void write_safetensors(const std::filesystem::path& path, std::span<const NamedTensor> tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata) {
  write_file(path, safetensors_bytes(tensors, metadata));
}

void write_sharded_safetensors(const std::filesystem::path& folder, std::span<const NamedTensor> tensors, int shards) {
  const size_t per_shard = (tensors.size() + shards - 1) / shards;
  Json weight_map = Json::object();
  uint64_t total = 0;
  for (int shard = 0; shard < shards; ++shard) {
    const size_t begin = std::min(tensors.size(), shard * per_shard);
    const size_t end = std::min(tensors.size(), begin + per_shard);
    char name[64];
    std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", shard + 1, shards);
    const auto run = tensors.subspan(begin, end - begin);
    write_safetensors(folder / name, run);
    for (const NamedTensor& named : run) {
      weight_map[named.name] = name;
      total += named.tensor.payload_bytes();
    }
  }
  const Json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_file(folder / "model.safetensors.index.json", index.dump(2));
}

std::string config_json(const HfModelSpec& spec) {
  const std::string model_type = spec.model_type.empty() ? default_model_type(spec.architecture) : spec.model_type;
  const bool t5 = spec.layout == ConfigLayout::transformers5;
  Json config = Json::object();
  config["model_type"] = model_type;
  config["vocab_size"] = spec.vocab_size;
  if (spec.architecture == Architecture::gpt2) {
    config["architectures"] = {"GPT2LMHeadModel"};
    config["n_embd"] = spec.hidden_size;
    config["n_layer"] = spec.layer_count;
    config["n_head"] = spec.head_count;
    config["n_positions"] = spec.context_length;
    config["n_ctx"] = spec.context_length;
    config["n_inner"] = spec.ffn_size == 4 * spec.hidden_size ? Json(nullptr) : Json(spec.ffn_size);
    config["layer_norm_epsilon"] = spec.norm_eps;
    config["activation_function"] = "gelu_new";
    if (!spec.tie_word_embeddings) config["tie_word_embeddings"] = false;
  } else {
    config["architectures"] = {spec.architecture == Architecture::qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
    config["hidden_size"] = spec.hidden_size;
    config["num_hidden_layers"] = spec.layer_count;
    config["num_attention_heads"] = spec.head_count;
    config["num_key_value_heads"] = spec.kv_head_count;
    config["head_dim"] = t5 ? Json(spec.hidden_size / spec.head_count) : Json(nullptr);
    config["intermediate_size"] = spec.ffn_size;
    config["max_position_embeddings"] = spec.context_length;
    config["rms_norm_eps"] = spec.norm_eps;
    config["hidden_act"] = "silu";
    if (spec.architecture == Architecture::llama) config["attention_bias"] = spec.attention_bias;
    config["tie_word_embeddings"] = spec.tie_word_embeddings;
    if (t5) {
      Json rope = {{"rope_theta", spec.rope_theta}, {"rope_type", spec.linear_rope_factor ? "linear" : "default"}};
      if (spec.linear_rope_factor) rope["factor"] = *spec.linear_rope_factor;
      config["rope_parameters"] = rope;
    } else {
      config["rope_theta"] = spec.rope_theta;
      config["rope_scaling"] = spec.linear_rope_factor ? Json{{"type", "linear"}, {"factor", *spec.linear_rope_factor}}
                                                       : Json(nullptr);
    }
  }
  config["bos_token_id"] = spec.bos_token_id ? Json(*spec.bos_token_id) : Json(nullptr);
  config["eos_token_id"] = spec.eos_token_id ? Json(*spec.eos_token_id) : Json(nullptr);
  config[t5 ? "dtype" : "torch_dtype"] = torch_dtype(spec.dtype);
  config["transformers_version"] = t5 ? "5.17.0" : "4.46.0";
  return config.dump(2);
}

ModelConfig expected_config(const HfModelSpec& spec, std::string name) {
  const bool gpt2 = spec.architecture == Architecture::gpt2;
  ModelConfig config;
  config.architecture = spec.architecture;
  config.name = std::move(name);
  config.vocab_size = spec.vocab_size;
  config.hidden_size = spec.hidden_size;
  config.layer_count = spec.layer_count;
  config.head_count = spec.head_count;
  config.kv_head_count = gpt2 ? spec.head_count : spec.kv_head_count;
  config.head_dim = spec.hidden_size / spec.head_count;
  config.ffn_size = spec.ffn_size;
  config.context_length = spec.context_length;
  if (!gpt2) {
    config.rope_theta = spec.rope_theta;
    if (spec.linear_rope_factor) {
      config.rope_scaling = RopeScaling::linear;
      config.rope_scaling_factor = *spec.linear_rope_factor;
    }
  }
  config.norm_eps = spec.norm_eps;
  config.tie_word_embeddings = spec.tie_word_embeddings;
  config.attention_bias = spec.architecture == Architecture::llama ? spec.attention_bias : true;
  config.bos_token_id = spec.bos_token_id;
  config.eos_token_id = spec.eos_token_id;
  return config;
}

std::string tokenizer_json(const HfModelSpec& spec) {
  static constexpr std::string_view kSingles[] = {"\u0120", "a", "b", "c", "d", "e", "f", "g",
                                                  "h",      "i", "j", "k", "l", "m", "n", "o"};
  constexpr int64_t kSingleCount = std::size(kSingles);
  Json vocab = Json::object();
  vocab["<|begin_of_text|>"] = 0;
  vocab["<|end_of_text|>"] = 1;
  Json merges = Json::array();
  const bool pair_form = spec.architecture == Architecture::qwen2;  // newer tokenizers write ["a", "b"]
  for (int64_t id = 2; id < spec.vocab_size; ++id) {
    const int64_t index = id - 2;
    if (index < kSingleCount) {
      vocab[std::string(kSingles[index])] = id;
    } else if (index < kSingleCount + kSingleCount * kSingleCount) {
      const int64_t pair = index - kSingleCount;
      const std::string left(kSingles[pair / kSingleCount]), right(kSingles[pair % kSingleCount]);
      vocab[left + right] = id;
      merges.push_back(pair_form ? Json::array({left, right}) : Json(left + " " + right));
    } else {
      vocab["tok" + std::to_string(id)] = id;
    }
  }
  const auto special = [](int id, const char* content) {
    return Json{{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", false}, {"special", true}};
  };
  const Json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                           {"use_regex", spec.architecture == Architecture::gpt2}};
  Json pre_tokenizer = byte_level;
  if (spec.architecture != Architecture::gpt2) {
    const std::string_view split = spec.architecture == Architecture::qwen2 ? kQwen2Split : kLlama3Split;
    pre_tokenizer = {{"type", "Sequence"},
                     {"pretokenizers",
                      {{{"type", "Split"}, {"pattern", {{"Regex", split}}}, {"behavior", "Isolated"}, {"invert", false}},
                       byte_level}}};
  }
  Json post_processor = byte_level;
  if (spec.architecture == Architecture::llama) {
    const Json bos = {{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}};
    const Json text = {{"Sequence", {{"id", "A"}, {"type_id", 0}}}};
    post_processor = {{"type", "TemplateProcessing"},
                      {"single", {bos, text}},
                      {"pair", {bos, text}},
                      {"special_tokens", {{"<|begin_of_text|>", {{"id", "<|begin_of_text|>"}, {"ids", {0}},
                                                                 {"tokens", {"<|begin_of_text|>"}}}}}}};
  }
  const Json tokenizer = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", {special(0, "<|begin_of_text|>"), special(1, "<|end_of_text|>")}},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor", post_processor},
      {"decoder", byte_level},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"byte_fallback", false},
                 {"ignore_merges", false}, {"vocab", vocab}, {"merges", merges}}}};
  return tokenizer.dump(2);
}

std::vector<std::pair<std::string, Shape>> hf_tensor_shapes(const HfModelSpec& spec) {
  const int64_t hidden = spec.hidden_size, ffn = spec.ffn_size, vocab = spec.vocab_size;
  std::vector<std::pair<std::string, Shape>> shapes;
  if (spec.architecture == Architecture::gpt2) {
    const std::string prefix = spec.gpt2_transformer_prefix ? "transformer." : "";
    shapes.emplace_back(prefix + "wte.weight", Shape{vocab, hidden});
    shapes.emplace_back(prefix + "wpe.weight", Shape{spec.context_length, hidden});
    for (int64_t layer = 0; layer < spec.layer_count; ++layer) {
      const std::string block = prefix + "h." + std::to_string(layer) + ".";
      for (const char* norm : {"ln_1", "ln_2"}) {
        shapes.emplace_back(block + norm + ".weight", Shape{hidden});
        shapes.emplace_back(block + norm + ".bias", Shape{hidden});
      }
      // Conv1D stores [in, out].
      for (auto [name, in, out] : {std::tuple{"attn.c_attn", hidden, 3 * hidden}, {"attn.c_proj", hidden, hidden},
                                   {"mlp.c_fc", hidden, ffn}, {"mlp.c_proj", ffn, hidden}}) {
        shapes.emplace_back(block + name + ".weight", Shape{in, out});
        shapes.emplace_back(block + name + ".bias", Shape{out});
      }
      if (spec.include_buffers) {
        shapes.emplace_back(block + "attn.bias", Shape{1, 1, spec.context_length, spec.context_length});
        shapes.emplace_back(block + "attn.masked_bias", Shape{});
      }
    }
    shapes.emplace_back(prefix + "ln_f.weight", Shape{hidden});
    shapes.emplace_back(prefix + "ln_f.bias", Shape{hidden});
  } else {
    const int64_t head_dim = hidden / spec.head_count;
    const int64_t q_rows = spec.head_count * head_dim, kv_rows = spec.kv_head_count * head_dim;
    const bool qkv_bias = spec.architecture == Architecture::qwen2 || spec.attention_bias;
    shapes.emplace_back("model.embed_tokens.weight", Shape{vocab, hidden});
    for (int64_t layer = 0; layer < spec.layer_count; ++layer) {
      const std::string block = "model.layers." + std::to_string(layer) + ".";
      shapes.emplace_back(block + "input_layernorm.weight", Shape{hidden});
      for (auto [name, rows] : {std::pair{"q_proj", q_rows}, {"k_proj", kv_rows}, {"v_proj", kv_rows}}) {
        shapes.emplace_back(block + "self_attn." + name + ".weight", Shape{rows, hidden});
        if (qkv_bias) shapes.emplace_back(block + "self_attn." + name + ".bias", Shape{rows});
      }
      shapes.emplace_back(block + "self_attn.o_proj.weight", Shape{hidden, q_rows});
      if (spec.architecture == Architecture::llama && spec.attention_bias)
        shapes.emplace_back(block + "self_attn.o_proj.bias", Shape{hidden});
      if (spec.include_buffers) shapes.emplace_back(block + "self_attn.rotary_emb.inv_freq", Shape{head_dim / 2});
      shapes.emplace_back(block + "post_attention_layernorm.weight", Shape{hidden});
      shapes.emplace_back(block + "mlp.gate_proj.weight", Shape{ffn, hidden});
      shapes.emplace_back(block + "mlp.up_proj.weight", Shape{ffn, hidden});
      shapes.emplace_back(block + "mlp.down_proj.weight", Shape{hidden, ffn});
    }
    shapes.emplace_back("model.norm.weight", Shape{hidden});
  }
  if (!spec.tie_word_embeddings) shapes.emplace_back("lm_head.weight", Shape{vocab, hidden});
  return shapes;
}

const Tensor& HfModel::tensor(std::string_view name) const {
  for (const NamedTensor& named : tensors)
    if (named.name == name) return named.tensor;
  ADD_FAILURE() << "the test model has no tensor " << name;
  static const Tensor missing;
  return missing;
}

HfModel write_random_hf_model(const std::filesystem::path& folder, const HfModelSpec& spec, SeededRng& rng) {
  std::filesystem::create_directories(folder);
  HfModel model{folder, {}};
  for (const auto& [name, shape] : hf_tensor_shapes(spec)) {
    Tensor tensor = Tensor::empty(shape, spec.dtype).value();
    const float range = shape.rank() == 2 ? spec.matrix_range : 1.0f;
    const std::vector<float> values = rng.uniform(static_cast<size_t>(shape.elements()), -range, range);
    for (int64_t i = 0; i < tensor.elements(); ++i) tensor.set_flat(i, values[static_cast<size_t>(i)]);
    model.tensors.push_back({name, tensor});
  }
  if (spec.shards > 1) write_sharded_safetensors(folder, model.tensors, spec.shards);
  else write_safetensors(folder / "model.safetensors", model.tensors);
  write_file(folder / "config.json", config_json(spec));
  write_file(folder / "tokenizer.json", tokenizer_json(spec));
  return model;
}

}  // namespace ember::testing
