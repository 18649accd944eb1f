#include "ember/model_config.h"

#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ember {

namespace {

using Json = nlohmann::json;

constexpr std::pair<Architecture, std::string_view> kArchitectureNames[] = {
    {Architecture::llama, "llama"}, {Architecture::qwen2, "qwen2"}, {Architecture::gpt2, "gpt2"}};

// Typed reads of config.json keys. A key set to null counts as absent: transformers
// writes null for "use the default" (head_dim, n_inner, pad_token_id).
class ConfigReader {
 public:
  ConfigReader(const Json& root, std::string_view source) : root_(root), source_(source) {}

  Status error(std::string_view key, std::string_view what) const {
    return invalid_argument(fmt::format("{}: {} {}", source_, key, what));
  }

  Result<std::optional<int64_t>> optional_int(const Json& object, std::string_view key) const {
    const auto it = object.find(key);
    if (it == object.end()) return std::optional<int64_t>{};
    return integer(*it, key);
  }
  Result<std::optional<int64_t>> optional_int(std::string_view key) const { return optional_int(root_, key); }

  Result<int64_t> required_int(std::string_view key) const {
    auto value = optional_int(key);
    if (!value) return value.status();
    if (!value->has_value()) return error(key, "is missing");
    return **value;
  }

  Result<std::optional<double>> optional_float(const Json& object, std::string_view key) const {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) return std::optional<double>{};
    if (!it->is_number()) return error(key, fmt::format("is {}, not a number", it->dump()));
    return std::optional<double>(it->get<double>());
  }

  Result<bool> boolean(std::string_view key, bool fallback) const {
    const auto it = root_.find(key);
    if (it == root_.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) return error(key, fmt::format("is {}, not true or false", it->dump()));
    return it->get<bool>();
  }

  // bos/eos ids may be one id or a list of them (chat models end on several tokens).
  Result<std::optional<int64_t>> token_id(std::string_view key) const {
    const auto it = root_.find(key);
    if (it == root_.end()) return std::optional<int64_t>{};
    if (it->is_array() && it->empty()) return std::optional<int64_t>{};
    if (it->is_array()) return integer(it->front(), key);
    return integer(*it, key);
  }

  const Json& root() const { return root_; }
  std::string_view source() const { return source_; }

 private:
  Result<std::optional<int64_t>> integer(const Json& value, std::string_view key) const {
    if (value.is_null()) return std::optional<int64_t>{};
    if (!value.is_number_integer()) return error(key, fmt::format("is {}, not an integer", value.dump()));
    if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      return error(key, fmt::format("{} is too large", value.dump()));
    return std::optional<int64_t>(value.get<int64_t>());
  }

  const Json& root_;
  std::string_view source_;
};

// Both layouts: transformers 5's rope_parameters {rope_theta, rope_type, factor}, or
// transformers 4's top-level rope_theta and rope_scaling {type | rope_type, factor}.
Status read_rope(const ConfigReader& reader, ModelConfig& config) {
  const Json& root = reader.root();
  const auto parameters = root.find("rope_parameters");
  const bool nested = parameters != root.end() && !parameters->is_null();
  if (nested && !parameters->is_object()) return reader.error("rope_parameters", "is not an object");
  const Json& theta_holder = nested ? *parameters : root;
  auto theta = reader.optional_float(theta_holder, "rope_theta");
  if (!theta) return theta.status();
  if (theta->has_value()) config.rope_theta = static_cast<float>(**theta);

  const auto scaling_key = nested ? "rope_parameters" : "rope_scaling";
  const auto scaling = nested ? parameters : root.find("rope_scaling");
  if (scaling == root.end() || scaling->is_null()) return {};
  if (!scaling->is_object()) return reader.error(scaling_key, "is not an object");
  auto type = scaling->find("rope_type");
  if (type == scaling->end()) type = scaling->find("type");
  if (type == scaling->end() || type->is_null()) return {};
  if (!type->is_string()) return reader.error(scaling_key, fmt::format("has rope type {}, not a string", type->dump()));
  const std::string& kind = type->get_ref<const std::string&>();
  if (kind == "default") return {};
  if (kind != "linear")
    return unsupported(fmt::format("{}: {} asks for '{}' rope scaling; ember supports only linear", reader.source(),
                                   scaling_key, kind));
  auto factor = reader.optional_float(*scaling, "factor");
  if (!factor) return factor.status();
  if (!factor->has_value() || !(**factor > 0.0))
    return reader.error(scaling_key, "has linear scaling without a positive factor");
  config.rope_scaling = RopeScaling::linear;
  config.rope_scaling_factor = static_cast<float>(**factor);
  return {};
}

Status read_llama_family(const ConfigReader& reader, ModelConfig& config) {
  for (auto [field, key] : {std::pair{&config.vocab_size, "vocab_size"}, {&config.hidden_size, "hidden_size"},
                            {&config.layer_count, "num_hidden_layers"}, {&config.head_count, "num_attention_heads"},
                            {&config.ffn_size, "intermediate_size"}, {&config.context_length, "max_position_embeddings"}}) {
    auto value = reader.required_int(key);
    if (!value) return value.status();
    *field = value.value();
  }
  auto kv_heads = reader.optional_int("num_key_value_heads");
  if (!kv_heads) return kv_heads.status();
  config.kv_head_count = kv_heads->value_or(config.head_count);
  auto head_dim = reader.optional_int("head_dim");
  if (!head_dim) return head_dim.status();
  config.head_dim = head_dim->value_or(config.head_count > 0 ? config.hidden_size / config.head_count : 0);
  auto eps = reader.optional_float(reader.root(), "rms_norm_eps");
  if (!eps) return eps.status();
  config.norm_eps = static_cast<float>(eps->value_or(1e-6));
  EMBER_RETURN_IF_ERROR(read_rope(reader, config));

  auto mlp_bias = reader.boolean("mlp_bias", false);
  if (!mlp_bias) return mlp_bias.status();
  if (mlp_bias.value()) return unsupported(fmt::format("{}: mlp_bias is true; ember's llama block has no MLP biases", reader.source()));
  if (config.architecture == Architecture::qwen2) {
    config.attention_bias = true;
  } else {
    auto bias = reader.boolean("attention_bias", false);
    if (!bias) return bias.status();
    config.attention_bias = bias.value();
  }
  auto tied = reader.boolean("tie_word_embeddings", false);
  if (!tied) return tied.status();
  config.tie_word_embeddings = tied.value();
  return {};
}

Status read_gpt2(const ConfigReader& reader, ModelConfig& config) {
  for (auto [field, key] : {std::pair{&config.vocab_size, "vocab_size"}, {&config.hidden_size, "n_embd"},
                            {&config.layer_count, "n_layer"}, {&config.head_count, "n_head"}}) {
    auto value = reader.required_int(key);
    if (!value) return value.status();
    *field = value.value();
  }
  auto positions = reader.optional_int("n_positions");
  if (!positions) return positions.status();
  if (!positions->has_value()) {
    positions = reader.optional_int("n_ctx");
    if (!positions) return positions.status();
    if (!positions->has_value()) return reader.error("n_positions", "is missing");
  }
  config.context_length = **positions;
  config.kv_head_count = config.head_count;
  config.head_dim = config.head_count > 0 ? config.hidden_size / config.head_count : 0;
  auto inner = reader.optional_int("n_inner");
  if (!inner) return inner.status();
  // GPT-2's default inner size is 4 n_embd; an n_embd too large for that is refused here,
  // before validation, so the product cannot overflow.
  constexpr int64_t kLargestTimesFour = std::numeric_limits<int64_t>::max() / 4;
  if (!inner->has_value() && (config.hidden_size > kLargestTimesFour || config.hidden_size < -kLargestTimesFour))
    return reader.error("n_embd", "is too large");
  config.ffn_size = inner->value_or(4 * config.hidden_size);
  auto eps = reader.optional_float(reader.root(), "layer_norm_epsilon");
  if (!eps) return eps.status();
  config.norm_eps = static_cast<float>(eps->value_or(1e-5));
  config.attention_bias = true;
  auto tied = reader.boolean("tie_word_embeddings", true);
  if (!tied) return tied.status();
  config.tie_word_embeddings = tied.value();
  return {};
}

}  // namespace

std::string_view architecture_name(Architecture architecture) {
  for (auto [value, name] : kArchitectureNames)
    if (value == architecture) return name;
  return "unknown";
}

std::optional<Architecture> architecture_from_name(std::string_view name) {
  for (auto [value, known] : kArchitectureNames)
    if (known == name) return value;
  return std::nullopt;
}

Status validate_model_config(const ModelConfig& config, std::string_view source) {
  const bool gpt2 = config.architecture == Architecture::gpt2;
  const std::pair<int64_t, std::string_view> sizes[] = {
      {config.vocab_size, "vocab_size"},
      {config.hidden_size, gpt2 ? "n_embd" : "hidden_size"},
      {config.layer_count, gpt2 ? "n_layer" : "num_hidden_layers"},
      {config.head_count, gpt2 ? "n_head" : "num_attention_heads"},
      {config.kv_head_count, "num_key_value_heads"},
      {config.head_dim, "head_dim"},
      {config.ffn_size, gpt2 ? "n_inner" : "intermediate_size"},
      {config.context_length, gpt2 ? "n_positions" : "max_position_embeddings"}};
  for (auto [value, key] : sizes)
    if (value <= 0) return invalid_argument(fmt::format("{}: {} is {}; it must be positive", source, key, value));
  if (config.hidden_size % config.head_count != 0)
    return invalid_argument(fmt::format("{}: {} ({}) does not divide {} ({})", source, sizes[3].second, config.head_count,
                                        sizes[1].second, config.hidden_size));
  if (config.head_count % config.kv_head_count != 0)
    return invalid_argument(fmt::format("{}: num_key_value_heads ({}) does not divide {} ({})", source,
                                        config.kv_head_count, sizes[3].second, config.head_count));
  if (!gpt2 && config.head_dim % 2 != 0)
    return invalid_argument(fmt::format("{}: head_dim ({}) is odd; rotary positions rotate pairs", source, config.head_dim));
  if (!(config.norm_eps > 0.0f))
    return invalid_argument(fmt::format("{}: {} ({}) must be positive", source, gpt2 ? "layer_norm_epsilon" : "rms_norm_eps",
                                        config.norm_eps));
  if (config.rope_scaling == RopeScaling::linear && !(config.rope_scaling_factor > 0.0f))
    return invalid_argument(fmt::format("{}: the linear rope scaling factor ({}) must be positive", source,
                                        config.rope_scaling_factor));
  if (!gpt2 && !(config.rope_theta > 0.0f))
    return invalid_argument(fmt::format("{}: rope_theta ({}) must be positive", source, config.rope_theta));
  return {};
}

Result<ModelConfig> parse_model_config(std::string_view json_text, std::string_view source) {
  Json root;
  try {
    root = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::exception& error) {
    return Status(ErrorCode::corrupt_file, fmt::format("{}: not valid JSON: {}", source, error.what()));
  }
  if (!root.is_object()) return Status(ErrorCode::corrupt_file, fmt::format("{}: not a JSON object", source));
  const ConfigReader reader(root, source);
  const auto model_type = root.find("model_type");
  if (model_type == root.end() || !model_type->is_string()) return reader.error("model_type", "is missing or not a string");
  const std::string& type = model_type->get_ref<const std::string&>();

  ModelConfig config;
  if (type == "llama" || type == "mistral") config.architecture = Architecture::llama;
  else if (type == "qwen2") config.architecture = Architecture::qwen2;
  else if (type == "gpt2") config.architecture = Architecture::gpt2;
  else return unsupported(fmt::format("{}: model_type '{}' is unsupported (ember reads llama, mistral, qwen2, gpt2)", source, type));

  try {
    EMBER_RETURN_IF_ERROR(config.architecture == Architecture::gpt2 ? read_gpt2(reader, config)
                                                                     : read_llama_family(reader, config));
    auto bos = reader.token_id("bos_token_id");
    if (!bos) return bos.status();
    config.bos_token_id = bos.value();
    auto eos = reader.token_id("eos_token_id");
    if (!eos) return eos.status();
    config.eos_token_id = eos.value();
  } catch (const Json::exception& error) {
    return Status(ErrorCode::corrupt_file, fmt::format("{}: {}", source, error.what()));
  }
  EMBER_RETURN_IF_ERROR(validate_model_config(config, source));
  return config;
}

Result<ModelConfig> read_model_config(const std::filesystem::path& path) {
  std::error_code ignored;
  const bool is_folder = std::filesystem::is_directory(path, ignored);
  const std::filesystem::path file = is_folder ? path / "config.json" : path;
  std::ifstream stream(file, std::ios::binary);
  if (!stream) return Status(ErrorCode::io_error, fmt::format("{}: cannot open", file.string()));
  std::ostringstream text;
  text << stream.rdbuf();
  if (stream.bad()) return Status(ErrorCode::io_error, fmt::format("{}: cannot read", file.string()));
  auto config = parse_model_config(text.str(), file.string());
  if (!config) return config;
  const std::filesystem::path folder = (is_folder ? path : file.parent_path()).lexically_normal();
  config->name = (folder.has_filename() ? folder : folder.parent_path()).filename().string();
  return config;
}

std::vector<std::pair<std::string, GgufValue>> gguf_metadata(const ModelConfig& config) {
  const std::string arch(architecture_name(config.architecture));
  const auto u32 = [](int64_t value) { return GgufValue::u32(static_cast<uint32_t>(value)); };
  std::vector<std::pair<std::string, GgufValue>> keys;
  keys.emplace_back("general.architecture", GgufValue::string(arch));
  keys.emplace_back("general.name", GgufValue::string(config.name));
  keys.emplace_back(arch + ".block_count", u32(config.layer_count));
  keys.emplace_back(arch + ".context_length", u32(config.context_length));
  keys.emplace_back(arch + ".embedding_length", u32(config.hidden_size));
  keys.emplace_back(arch + ".feed_forward_length", u32(config.ffn_size));
  keys.emplace_back(arch + ".attention.head_count", u32(config.head_count));
  if (config.architecture == Architecture::gpt2) {
    keys.emplace_back(arch + ".attention.layer_norm_epsilon", GgufValue::f32(config.norm_eps));
  } else {
    keys.emplace_back(arch + ".attention.head_count_kv", u32(config.kv_head_count));
    keys.emplace_back(arch + ".rope.freq_base", GgufValue::f32(config.rope_theta));
    keys.emplace_back(arch + ".attention.layer_norm_rms_epsilon", GgufValue::f32(config.norm_eps));
    keys.emplace_back(arch + ".rope.dimension_count", u32(config.head_dim));
    if (config.rope_scaling == RopeScaling::linear) {
      keys.emplace_back(arch + ".rope.scaling.type", GgufValue::string("linear"));
      keys.emplace_back(arch + ".rope.scaling.factor", GgufValue::f32(config.rope_scaling_factor));
    }
  }
  if (config.head_dim * config.head_count != config.hidden_size) {
    keys.emplace_back(arch + ".attention.key_length", u32(config.head_dim));
    keys.emplace_back(arch + ".attention.value_length", u32(config.head_dim));
  }
  keys.emplace_back(arch + ".vocab_size", u32(config.vocab_size));
  if (config.bos_token_id) keys.emplace_back("tokenizer.ggml.bos_token_id", u32(*config.bos_token_id));
  if (config.eos_token_id) keys.emplace_back("tokenizer.ggml.eos_token_id", u32(*config.eos_token_id));
  return keys;
}

Result<ModelConfig> model_config_from_gguf(const GgufFile& file) {
  const std::string source = file.path().string();
  auto arch = file.get_string("general.architecture");
  if (!arch) return arch.status();
  const auto architecture = architecture_from_name(arch.value());
  if (!architecture)
    return unsupported(fmt::format("{}: general.architecture '{}' is unsupported (ember reads llama, qwen2, gpt2)", source,
                                   arch.value()));
  ModelConfig config;
  config.architecture = *architecture;
  const bool gpt2 = config.architecture == Architecture::gpt2;
  const std::string prefix = arch.value() + ".";
  if (const GgufValue* name = file.find("general.name"); name != nullptr && name->as_string() != nullptr)
    config.name = *name->as_string();

  for (auto [field, key] : {std::pair{&config.layer_count, "block_count"}, {&config.context_length, "context_length"},
                            {&config.hidden_size, "embedding_length"}, {&config.ffn_size, "feed_forward_length"},
                            {&config.head_count, "attention.head_count"}}) {
    auto value = file.get_int(prefix + key);
    if (!value) return value.status();
    *field = value.value();
  }
  const auto optional_int = [&](const std::string& key, int64_t fallback) -> Result<int64_t> {
    return file.find(key) == nullptr ? Result<int64_t>(fallback) : file.get_int(key);
  };
  auto kv_heads = optional_int(prefix + "attention.head_count_kv", config.head_count);
  if (!kv_heads) return kv_heads.status();
  config.kv_head_count = kv_heads.value();
  auto head_dim = optional_int(prefix + "attention.key_length",
                               config.head_count > 0 ? config.hidden_size / config.head_count : 0);
  if (!head_dim) return head_dim.status();
  config.head_dim = head_dim.value();

  const GgufTensorInfo* embedding = file.find_tensor("token_embd.weight");
  auto vocab = optional_int(prefix + "vocab_size", embedding != nullptr ? embedding->shape[0] : 0);
  if (!vocab) return vocab.status();
  config.vocab_size = vocab.value();

  auto eps = file.get_float(prefix + (gpt2 ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon"));
  if (!eps) return eps.status();
  config.norm_eps = static_cast<float>(eps.value());
  if (!gpt2) {
    if (file.find(prefix + "rope.freq_base") != nullptr) {
      auto theta = file.get_float(prefix + "rope.freq_base");
      if (!theta) return theta.status();
      config.rope_theta = static_cast<float>(theta.value());
    }
    if (file.find(prefix + "rope.scaling.type") != nullptr) {
      auto type = file.get_string(prefix + "rope.scaling.type");
      if (!type) return type.status();
      if (type.value() == "linear") {
        auto factor = file.get_float(prefix + "rope.scaling.factor");
        if (!factor) return factor.status();
        config.rope_scaling = RopeScaling::linear;
        config.rope_scaling_factor = static_cast<float>(factor.value());
      } else if (type.value() != "none") {
        return unsupported(fmt::format("{}: {}rope.scaling.type '{}' is unsupported (ember supports linear)", source,
                                       prefix, type.value()));
      }
    }
  }
  for (auto [field, key] : {std::pair{&config.bos_token_id, "tokenizer.ggml.bos_token_id"},
                            {&config.eos_token_id, "tokenizer.ggml.eos_token_id"}}) {
    if (file.find(key) == nullptr) continue;
    auto id = file.get_int(key);
    if (!id) return id.status();
    *field = id.value();
  }
  config.tie_word_embeddings = file.find_tensor("output.weight") == nullptr;
  config.attention_bias = gpt2 || file.find_tensor("blk.0.attn_q.bias") != nullptr;
  EMBER_RETURN_IF_ERROR(validate_model_config(config, source));
  return config;
}

}  // namespace ember
