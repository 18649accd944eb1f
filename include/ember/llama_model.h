// A Llama-family model (llama, mistral loaded as llama, qwen2) ready to run: its
// weights, a KV cache and an executor. Each forward() builds the op graph of the
// transformer for the tokens given and runs it, storing their keys and values in the
// cache so later calls continue from them.
//
// Weights are used in the type the file holds them (f32, f16, bf16); the activations,
// norms and logits are f32.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "ember/dtype.h"
#include "ember/executor.h"
#include "ember/model_config.h"
#include "ember/status.h"
#include "ember/tensor.h"

namespace ember {

struct LlamaLoadOptions {
  DType kv_cache_type = DType::f32;  // f32 or f16
  int64_t context_length = 0;        // cache rows; 0: the model's context length
};

class LlamaModel {
 public:
  // `path`: a Hugging Face folder or a GGUF file (whatever open_model_source reads).
  // Errors name the file: another architecture, unsupported rope scaling, a missing or
  // misshapen tensor, a bad option.
  static Result<LlamaModel> load(const std::filesystem::path& path, const LlamaLoadOptions& options = {});

  const ModelConfig& config() const { return config_; }
  int64_t context_length() const { return context_length_; }
  // Positions 0..cached_tokens() - 1 have keys and values in the cache.
  int64_t cached_tokens() const { return cached_tokens_; }

  // Runs `tokens` at positions position..position + T - 1 in one batched pass and
  // returns their logits, f32 [T, vocab]. The cache keeps positions before `position`
  // and is overwritten from it on, so position may rewind but not skip ahead:
  // 0 <= position <= cached_tokens(). Errors: no tokens, a token id outside the
  // vocabulary, position + T past the context length.
  Result<Tensor> forward(std::span<const int32_t> tokens, int64_t position);

 private:
  struct Layer {
    Tensor attn_norm, wq, wk, wv, wo, bq, bk, bv, bo;  // biases undefined when absent
    Tensor ffn_norm, w_gate, w_up, w_down;
    Tensor k_cache, v_cache;  // [context, kv_heads, head_dim]
  };

  LlamaModel() = default;
  Result<Graph> build_graph(int64_t tokens, int64_t position) const;

  ModelConfig config_;
  int64_t context_length_ = 0;
  int64_t cached_tokens_ = 0;
  Tensor token_embd_, output_norm_, output_;  // output_ is token_embd_ when tied
  std::vector<Layer> layers_;
  Executor executor_;
};

}  // namespace ember
