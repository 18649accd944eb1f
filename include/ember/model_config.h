// The hyper-parameters of a decoder-only transformer, read from a Hugging Face
// config.json or from a GGUF file's metadata, and written back as GGUF keys.
//
// config.json comes in two layouts and both are read: transformers 4 puts `rope_theta`
// and `rope_scaling` at the top level and says `torch_dtype`; transformers 5 nests them
// in `rope_parameters` and says `dtype`. GPT-2 configs use their own names (n_embd,
// n_layer, n_head, n_positions, layer_norm_epsilon, n_inner).
//
// Float fields are float, not double, because GGUF stores them as float32: a config
// written to GGUF and read back compares equal.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/gguf.h"
#include "ember/status.h"

namespace ember {

// The block structure, named as llama.cpp's general.architecture.
//  llama: RMSNorm, SwiGLU, rotary positions on interleaved pairs. Hugging Face "llama"
//         and "mistral" (whose sliding window ember does not apply) load as this; their
//         q/k rows are permuted on conversion (hf_to_gguf.h) to suit that rotation.
//  qwen2: the llama block with q/k/v biases and rotate-half ("NEOX") rotary positions,
//         so its q/k rows keep Hugging Face's order.
//  gpt2:  LayerNorm with biases, GELU MLP, fused qkv, learned position embeddings.
enum class Architecture : uint8_t { llama, qwen2, gpt2 };
std::string_view architecture_name(Architecture architecture);
std::optional<Architecture> architecture_from_name(std::string_view name);

enum class RopeScaling : uint8_t { none, linear };

struct ModelConfig {
  Architecture architecture = Architecture::llama;
  std::string name;  // general.name; from config.json, the folder's name
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t layer_count = 0;
  int64_t head_count = 0;
  int64_t kv_head_count = 0;  // equals head_count without grouped-query attention
  int64_t head_dim = 0;       // hidden_size / head_count unless config.json says otherwise
  int64_t ffn_size = 0;
  int64_t context_length = 0;
  float rope_theta = 10000.0f;  // unused by gpt2
  RopeScaling rope_scaling = RopeScaling::none;
  float rope_scaling_factor = 1.0f;  // positions are divided by it under linear scaling
  float norm_eps = 1e-5f;            // RMSNorm's for llama/qwen2, LayerNorm's for gpt2
  bool tie_word_embeddings = false;  // no output matrix: token_embd doubles as it
  bool attention_bias = false;       // q/k/v (llama: also output) projections have biases
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> eos_token_id;  // the first one when config.json lists several

  friend bool operator==(const ModelConfig&, const ModelConfig&) = default;
};

// Reads <folder>/config.json, or the file itself when `path` names one. Errors name
// config.json and the key: missing or mistyped keys, an unknown model_type, sizes that
// are not positive, heads that do not divide hidden_size, kv heads that do not divide
// heads, an odd head_dim (rotary positions rotate pairs), unsupported rope scaling.
Result<ModelConfig> read_model_config(const std::filesystem::path& path);
// The same from JSON text; `source` names it in errors.
Result<ModelConfig> parse_model_config(std::string_view json_text, std::string_view source);

// Checks the invariants above on a config however it was made; `source` names it.
Status validate_model_config(const ModelConfig& config, std::string_view source);

// llama.cpp's keys: general.architecture, general.name, <arch>.block_count,
// context_length, embedding_length, feed_forward_length, attention.head_count(_kv),
// attention.layer_norm(_rms)_epsilon, rope.freq_base, rope.dimension_count,
// rope.scaling.type/factor, vocab_size, attention.key_length/value_length when head_dim
// is not hidden_size / head_count, and tokenizer.ggml.bos/eos_token_id when known.
std::vector<std::pair<std::string, GgufValue>> gguf_metadata(const ModelConfig& config);

// The inverse of gguf_metadata. tie_word_embeddings is "no output.weight tensor";
// attention_bias is "blk.0.attn_q.bias exists" (always true for gpt2, whose every
// projection has one). vocab_size falls back to token_embd.weight's rows when the file
// has no <arch>.vocab_size key. Errors name the file and key.
Result<ModelConfig> model_config_from_gguf(const GgufFile& file);

}  // namespace ember
