#include "ember/hf_to_gguf.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace ember {

namespace {

// When a tensor belongs to the model: some exist only with biases or an untied output.
enum class Need : uint8_t { always, attention_bias, output_bias, untied };

struct Rule {
  std::string_view hf;    // name, or for a layer tensor the part after "<layers prefix>N."
  std::string_view gguf;  // name, or for a layer tensor the part after "blk.N."
  TensorTransform transform = TensorTransform::none;
  Need need = Need::always;
};

constexpr Rule kLlamaTopRules[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight", TensorTransform::none, Need::untied},
};

constexpr Rule kLlamaLayerRules[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight", TensorTransform::permute_q},
    {"self_attn.q_proj.bias", "attn_q.bias", TensorTransform::permute_q, Need::attention_bias},
    {"self_attn.k_proj.weight", "attn_k.weight", TensorTransform::permute_k},
    {"self_attn.k_proj.bias", "attn_k.bias", TensorTransform::permute_k, Need::attention_bias},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.v_proj.bias", "attn_v.bias", TensorTransform::none, Need::attention_bias},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.o_proj.bias", "attn_output.bias", TensorTransform::none, Need::output_bias},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};
constexpr std::string_view kLlamaSkippedLayerTensors[] = {"self_attn.rotary_emb.inv_freq"};

constexpr Rule kGpt2TopRules[] = {
    {"wte.weight", "token_embd.weight"},
    {"wpe.weight", "position_embd.weight"},
    {"ln_f.weight", "output_norm.weight"},
    {"ln_f.bias", "output_norm.bias"},
    {"lm_head.weight", "output.weight", TensorTransform::none, Need::untied},
};

constexpr Rule kGpt2LayerRules[] = {
    {"ln_1.weight", "attn_norm.weight"},
    {"ln_1.bias", "attn_norm.bias"},
    {"attn.c_attn.weight", "attn_qkv.weight", TensorTransform::transpose},
    {"attn.c_attn.bias", "attn_qkv.bias"},
    {"attn.c_proj.weight", "attn_output.weight", TensorTransform::transpose},
    {"attn.c_proj.bias", "attn_output.bias"},
    {"ln_2.weight", "ffn_norm.weight"},
    {"ln_2.bias", "ffn_norm.bias"},
    {"mlp.c_fc.weight", "ffn_up.weight", TensorTransform::transpose},
    {"mlp.c_fc.bias", "ffn_up.bias"},
    {"mlp.c_proj.weight", "ffn_down.weight", TensorTransform::transpose},
    {"mlp.c_proj.bias", "ffn_down.bias"},
};
// Causal-mask buffers that older transformers versions saved with the weights.
constexpr std::string_view kGpt2SkippedLayerTensors[] = {"attn.bias", "attn.masked_bias"};

struct ArchitectureRules {
  std::span<const Rule> top;
  std::span<const Rule> layer;
  std::span<const std::string_view> skipped_layer_tensors;
  std::string_view layers_prefix;
  std::string_view optional_prefix;  // GPT-2 checkpoints name their tensors with or without it
};

ArchitectureRules rules_for(Architecture architecture) {
  if (architecture == Architecture::gpt2)
    return {kGpt2TopRules, kGpt2LayerRules, kGpt2SkippedLayerTensors, "h.", "transformer."};
  return {kLlamaTopRules, kLlamaLayerRules, kLlamaSkippedLayerTensors, "model.layers.", ""};
}

bool needed(const ModelConfig& config, Need need) {
  switch (need) {
    case Need::always: return true;
    case Need::attention_bias: return config.attention_bias;
    case Need::output_bias: return config.attention_bias && config.architecture == Architecture::llama;
    case Need::untied: return !config.tie_word_embeddings;
  }
  return false;
}

// Only llama rotates adjacent pairs; qwen2's rows stay in Hugging Face's order.
TensorMapping make_mapping(const ModelConfig& config, std::string_view hf_name, std::string gguf_name, const Rule& rule) {
  TensorMapping mapping{std::string(hf_name), std::move(gguf_name), rule.transform, 0};
  const bool permute = rule.transform == TensorTransform::permute_q || rule.transform == TensorTransform::permute_k;
  if (permute && config.architecture != Architecture::llama) mapping.transform = TensorTransform::none;
  else if (rule.transform == TensorTransform::permute_q) mapping.heads = config.head_count;
  else if (rule.transform == TensorTransform::permute_k) mapping.heads = config.kv_head_count;
  return mapping;
}

Status unknown_tensor(const ModelConfig& config, std::string_view hf_name) {
  return invalid_argument(fmt::format("tensor '{}' is not part of a {} model", hf_name, architecture_name(config.architecture)));
}

Status not_in_config(std::string_view hf_name, Need need) {
  const char* why = need == Need::untied ? "tie_word_embeddings is false"
                                         : "config.json gives the attention no bias";
  return invalid_argument(fmt::format("tensor '{}' is present but {}", hf_name, why));
}

// Ordered as the rules list them, which is llama.cpp's order.
std::vector<std::string> expected_gguf_names(const ModelConfig& config) {
  const ArchitectureRules rules = rules_for(config.architecture);
  std::vector<std::string> names;
  const auto add_top = [&](bool embeddings) {
    for (const Rule& rule : rules.top) {
      const bool is_embedding = rule.gguf == "token_embd.weight" || rule.gguf == "position_embd.weight";
      if (is_embedding == embeddings && needed(config, rule.need)) names.emplace_back(rule.gguf);
    }
  };
  add_top(true);
  for (int64_t layer = 0; layer < config.layer_count; ++layer)
    for (const Rule& rule : rules.layer)
      if (needed(config, rule.need)) names.push_back(fmt::format("blk.{}.{}", layer, rule.gguf));
  add_top(false);
  return names;
}

}  // namespace

Result<std::optional<TensorMapping>> map_hf_tensor(const ModelConfig& config, std::string_view hf_name) {
  const ArchitectureRules rules = rules_for(config.architecture);
  std::string_view name = hf_name;
  if (!rules.optional_prefix.empty() && name.starts_with(rules.optional_prefix)) name.remove_prefix(rules.optional_prefix.size());

  for (const Rule& rule : rules.top) {
    if (rule.hf != name) continue;
    if (needed(config, rule.need)) return std::optional(make_mapping(config, hf_name, std::string(rule.gguf), rule));
    // A tied model's lm_head is the embedding matrix again.
    if (rule.need == Need::untied) return std::optional<TensorMapping>{};
    return not_in_config(hf_name, rule.need);
  }

  if (!name.starts_with(rules.layers_prefix)) return unknown_tensor(config, hf_name);
  name.remove_prefix(rules.layers_prefix.size());
  const size_t dot = name.find('.');
  int64_t layer = -1;
  const auto [end, error] = std::from_chars(name.data(), name.data() + std::min(dot, name.size()), layer);
  if (dot == std::string_view::npos || dot == 0 || error != std::errc() || end != name.data() + dot)
    return unknown_tensor(config, hf_name);
  if (layer >= config.layer_count)
    return invalid_argument(fmt::format("tensor '{}' is in layer {}, but the model has {} layers", hf_name, layer,
                                        config.layer_count));
  const std::string_view rest = name.substr(dot + 1);
  if (std::find(rules.skipped_layer_tensors.begin(), rules.skipped_layer_tensors.end(), rest) !=
      rules.skipped_layer_tensors.end())
    return std::optional<TensorMapping>{};
  for (const Rule& rule : rules.layer) {
    if (rule.hf != rest) continue;
    if (!needed(config, rule.need)) return not_in_config(hf_name, rule.need);
    return std::optional(make_mapping(config, hf_name, fmt::format("blk.{}.{}", layer, rule.gguf), rule));
  }
  return unknown_tensor(config, hf_name);
}

Result<std::vector<TensorMapping>> map_hf_tensors(const ModelConfig& config, std::span<const std::string> hf_names) {
  const std::vector<std::string> expected = expected_gguf_names(config);
  std::vector<std::pair<size_t, TensorMapping>> ranked;
  for (const std::string& hf_name : hf_names) {
    auto mapping = map_hf_tensor(config, hf_name);
    if (!mapping) return mapping.status();
    if (!mapping->has_value()) continue;
    const auto position = std::find(expected.begin(), expected.end(), mapping.value()->gguf_name);
    ranked.emplace_back(static_cast<size_t>(position - expected.begin()), std::move(**mapping));
  }
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < ranked.size(); ++i)
    if (ranked[i].first == ranked[i - 1].first)
      return invalid_argument(fmt::format("tensors '{}' and '{}' both map to {}", ranked[i - 1].second.hf_name,
                                          ranked[i].second.hf_name, ranked[i].second.gguf_name));
  for (size_t i = 0, next = 0; i < expected.size(); ++i) {
    if (next < ranked.size() && ranked[next].first == i) {
      ++next;
      continue;
    }
    return invalid_argument(fmt::format("the {} model has no tensor for {}", architecture_name(config.architecture), expected[i]));
  }
  std::vector<TensorMapping> mappings;
  mappings.reserve(ranked.size());
  for (auto& entry : ranked) mappings.push_back(std::move(entry.second));
  return mappings;
}

Result<Tensor> materialize(const Tensor& hf_tensor, const TensorMapping& mapping) {
  const auto fail = [&](std::string_view what) {
    return invalid_argument(fmt::format("tensor '{}' ({}): {} {}", mapping.hf_name, mapping.gguf_name, hf_tensor.describe(), what));
  };
  const auto with_context = [&](const Status& status) {
    return Status(status.code(), fmt::format("tensor '{}' ({}): {}", mapping.hf_name, mapping.gguf_name, status.message()));
  };
  switch (mapping.transform) {
    case TensorTransform::none:
      return hf_tensor;
    case TensorTransform::transpose: {
      if (hf_tensor.rank() != 2) return fail("is not a matrix to transpose");
      auto transposed = hf_tensor.transpose(0, 1);
      if (!transposed) return with_context(transposed.status());
      auto dense = transposed->contiguous();
      if (!dense) return with_context(dense.status());
      return dense;
    }
    case TensorTransform::permute_q:
    case TensorTransform::permute_k: {
      if (hf_tensor.rank() != 1 && hf_tensor.rank() != 2) return fail("is neither a matrix nor a vector");
      const int64_t rows = hf_tensor.dim(0);
      if (mapping.heads <= 0 || rows % (2 * mapping.heads) != 0)
        return fail(fmt::format("has rows that do not split into {} heads of two halves", mapping.heads));
      const int64_t half = rows / mapping.heads / 2;
      const bool matrix = hf_tensor.rank() == 2;
      const Shape split = matrix ? Shape{mapping.heads, 2, half, hf_tensor.dim(1)} : Shape{mapping.heads, 2, half};
      auto viewed = hf_tensor.reshape(split);
      if (!viewed) return with_context(viewed.status());
      auto swapped = viewed->transpose(1, 2);
      if (!swapped) return with_context(swapped.status());
      auto dense = swapped->contiguous();
      if (!dense) return with_context(dense.status());
      auto result = dense->reshape(hf_tensor.shape());
      if (!result) return with_context(result.status());
      return result;
    }
  }
  return internal_error(fmt::format("tensor '{}': unknown transform", mapping.hf_name));
}

}  // namespace ember
