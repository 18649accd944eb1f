// Test helpers that write Hugging Face model files: safetensors (single or sharded with
// an index), config.json in both transformers layouts, tokenizer.json, and whole tiny
// random Llama / Qwen2 / GPT-2 folders, all inside a scratch directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/model_config.h"
#include "ember/tensor.h"
#include "test_util.h"

namespace ember::testing {

// A fresh directory under the system's temporary directory, removed with its contents
// when the object goes.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Writes `bytes` to `path`, replacing it; fails the calling test on error.
void write_file(const std::filesystem::path& path, std::string_view bytes);

struct NamedTensor {
  std::string name;
  Tensor tensor;  // f32, f16 or bf16; written with its own dtype
};

// The bytes of a safetensors file holding `tensors` in the given order, the header
// padded with spaces to a multiple of 8 as the Python library does.
std::string safetensors_bytes(std::span<const NamedTensor> tensors,
                              const std::vector<std::pair<std::string, std::string>>& metadata = {});
void write_safetensors(const std::filesystem::path& path, std::span<const NamedTensor> tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata = {});
// `shards` files model-0000i-of-0000n.safetensors (tensors dealt out in runs, in order)
// plus model.safetensors.index.json.
void write_sharded_safetensors(const std::filesystem::path& folder, std::span<const NamedTensor> tensors, int shards);

enum class ConfigLayout {
  transformers4,  // rope_theta / rope_scaling at the top level, torch_dtype
  transformers5,  // rope_parameters {rope_theta, rope_type, factor}, dtype
};

struct HfModelSpec {
  Architecture architecture = Architecture::llama;
  std::string model_type;  // empty: the architecture's own ("mistral" also loads as llama)
  int64_t vocab_size = 64;
  int64_t hidden_size = 32;
  int64_t layer_count = 2;
  int64_t head_count = 4;
  int64_t kv_head_count = 2;  // gpt2 ignores it (no grouped-query attention)
  int64_t ffn_size = 48;      // gpt2 writes n_inner only when this is not 4 × hidden_size
  int64_t context_length = 64;
  float rope_theta = 10000.0f;
  std::optional<float> linear_rope_factor;
  float norm_eps = 1e-5f;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // llama only: qwen2 always has q/k/v biases, gpt2 all biases
  std::optional<int64_t> bos_token_id = 0;
  std::optional<int64_t> eos_token_id = 1;
  DType dtype = DType::f32;
  int shards = 1;
  ConfigLayout layout = ConfigLayout::transformers4;
  bool gpt2_transformer_prefix = true;  // "transformer.h.0…" as GPT2LMHeadModel saves, else "h.0…"
  bool include_buffers = false;         // also write non-weights: rotary inv_freq, GPT-2 attention masks
  // Matrices uniform in [-matrix_range, matrix_range], every other tensor in [-1, 1]. 1 makes
  // activations grow layer by layer; about 1 / sqrt(hidden_size) keeps them near 1, as in
  // trained models, so that a rounding step of difference is not amplified as it passes.
  float matrix_range = 1.0f;
};

std::string config_json(const HfModelSpec& spec);
// The config read_model_config should return for `spec` in a folder called `name`.
ModelConfig expected_config(const HfModelSpec& spec, std::string name);

// A byte-level BPE tokenizer.json of exactly spec.vocab_size tokens: the special tokens
// <|begin_of_text|> (0) and <|end_of_text|> (1), 16 single characters, then merges of
// them. Llama gets Llama 3's split regex and a post-processor that prepends
// <|begin_of_text|>, qwen2 Qwen2's regex, gpt2 the ByteLevel pre-tokenizer alone.
std::string tokenizer_json(const HfModelSpec& spec);

// The Hugging Face tensors of `spec`: names and shapes, in the order they are written.
std::vector<std::pair<std::string, Shape>> hf_tensor_shapes(const HfModelSpec& spec);

struct HfModel {
  std::filesystem::path folder;
  std::vector<NamedTensor> tensors;  // as written, in spec.dtype
  const Tensor& tensor(std::string_view name) const;  // fails the test when absent
};

// Writes config.json, tokenizer.json and random weights (uniform, spec.matrix_range,
// rounded to spec.dtype) into `folder`, created if needed.
HfModel write_random_hf_model(const std::filesystem::path& folder, const HfModelSpec& spec, SeededRng& rng);

}  // namespace ember::testing
