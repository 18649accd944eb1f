// A decoder-only transformer ready to run: its weights, KV caches for one or more
// sequences, and an executor. Each forward() builds the op graph of the architecture
// (Llama family: llama, mistral, qwen2; GPT-2) for the tokens given and runs it, storing
// their keys and values in the caches so later calls continue from them. A call with the
// same sequences and token counts as the last one (decoding) runs the last graph again,
// its attention moved to the new positions.
//
// Weights are used in the type the file holds them (f32, f16, bf16; block-quantized
// ones are widened to f32 at load until the linear kernels read blocks, issue #5). The
// activations, norms and logits are f32.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "ember/dtype.h"
#include "ember/executor.h"
#include "ember/model_config.h"
#include "ember/offload.h"
#include "ember/status.h"
#include "ember/tensor.h"

namespace ember {

struct BatchLayout;

struct ModelOptions {
  DType kv_cache_type = DType::f16;  // f32, f16 or q8_0 (q8_0 needs head_dim a multiple of 32)
  int64_t context_length = 0;        // cache rows per sequence; 0: the model's context length
  int sequences = 1;                 // independent KV caches, for decoding several sequences as one batch
  bool lock_weights = false;         // mlock the weights (llama.cpp's --mlock): never evicted, never re-read
  OffloadOptions offload = {};       // which linear layers a Vulkan device runs (ember/offload.h)
};

// One sequence's part of a batch: `tokens` at positions position..position + size - 1.
struct SequenceTokens {
  int sequence = 0;
  int64_t position = 0;
  std::span<const int32_t> tokens;
  bool all_logits = true;  // false: the logits of the last token only
};

struct ModelWeights;
struct KvCaches;

class Model {
 public:
  // `path`: a Hugging Face folder or a GGUF file. Errors name the file: an unsupported
  // architecture or rope scaling, a missing or misshapen tensor, a bad option.
  static Result<Model> load(const std::filesystem::path& path, const ModelOptions& options = {});

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const ModelConfig& config() const { return config_; }
  int64_t context_length() const { return context_length_; }
  int sequences() const { return static_cast<int>(cached_tokens_.size()); }
  DType kv_cache_type() const { return kv_cache_type_; }
  // Positions 0..cached_tokens(sequence) - 1 of that sequence have keys and values cached.
  int64_t cached_tokens(int sequence = 0) const;
  int64_t parameter_count() const;
  // Bytes of the weights as the model holds them in memory.
  int64_t weight_bytes() const;
  // Bytes of all KV caches.
  int64_t kv_cache_bytes() const;

  // Runs `tokens` of sequence 0 at positions position..position + T - 1 and returns their
  // logits, f32 [T, vocab].
  Result<Tensor> forward(std::span<const int32_t> tokens, int64_t position);
  // Runs every part of the batch in one pass (one GEMM per weight for all rows) and returns
  // the logits rows the parts ask for, in order, f32 [rows, vocab]. Each sequence may appear
  // once. A sequence's cache keeps positions before `position` and is overwritten from it
  // on, so position may rewind but not skip ahead: 0 <= position <= cached_tokens(sequence).
  // Errors: no tokens, a token id outside the vocabulary, a bad sequence, position + T past
  // the context length.
  Result<Tensor> forward(std::span<const SequenceTokens> batch);
  // Copies the first `tokens` cached positions of sequence `from` into sequence `to` (a
  // prompt evaluated once and continued several ways).
  Status copy_sequence(int from, int to, int64_t tokens);

  // Per-op timings of the last forward pass (each names the backend that ran its node),
  // and the pool its intermediates came from.
  const std::vector<NodeTiming>& last_timings() const { return executor_.last_timings(); }
  const Graph* last_graph() const { return last_graph_.get(); }
  BufferPool& pool() { return executor_.pool(); }

 private:
  Model();
  std::unique_ptr<Graph> reusable_graph(const BatchLayout& layout);

  ModelConfig config_;
  DType kv_cache_type_ = DType::f16;
  int64_t context_length_ = 0;
  std::vector<int64_t> cached_tokens_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<KvCaches> caches_;
  // Ran the last pass; the next pass of the same parts (sequences, token counts, logit
  // rows) runs it again with its attention moved to the new positions (reusable_graph).
  std::unique_ptr<Graph> last_graph_;
  std::vector<int> last_sequences_;
  std::vector<AttentionSegment> last_rows_;
  bool last_all_logits_ = false;
  int64_t last_logit_rows_ = 0;
  Executor executor_;
};

}  // namespace ember
