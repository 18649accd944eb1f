// What the model runtime shares between its architectures (core/llama_arch.cpp,
// core/gpt2_arch.cpp): the weights of any of them, the KV caches, and the layout of one
// batch. Internal to core/.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/model_source.h"
#include "ember/graph.h"
#include "ember/model.h"

namespace ember {

// Tensors an architecture does not use (or a file leaves out, like biases) stay undefined.
struct LayerWeights {
  Tensor attn_norm, attn_norm_bias;
  // GPT-2's fused qkv matrix is held as three row views of it.
  Tensor wq, wk, wv, wo, bq, bk, bv, bo;
  Tensor ffn_norm, ffn_norm_bias;
  Tensor w_gate, w_up, w_down, b_up, b_down;
};

struct ModelWeights {
  Tensor token_embd, position_embd;  // position_embd: GPT-2's learned positions
  Tensor output_norm, output_norm_bias;
  Tensor output;  // token_embd when the embeddings are tied
  std::vector<LayerWeights> layers;

  // Calls fn(const Tensor&) once per distinct weight tensor, defined or not (a tied output
  // is token_embd, visited once).
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const Tensor* tensor : {&token_embd, &position_embd, &output_norm, &output_norm_bias}) fn(*tensor);
    if (output.buffer() != token_embd.buffer()) fn(output);
    for (const LayerWeights& layer : layers)
      for (const Tensor* tensor : {&layer.attn_norm, &layer.attn_norm_bias, &layer.wq, &layer.wk, &layer.wv, &layer.wo,
                                   &layer.bq, &layer.bk, &layer.bv, &layer.bo, &layer.ffn_norm, &layer.ffn_norm_bias,
                                   &layer.w_gate, &layer.w_up, &layer.w_down, &layer.b_up, &layer.b_down})
        fn(*tensor);
  }
};

// Per sequence and layer, keys and values [context, kv_heads, head_dim].
struct KvCaches {
  struct Layer {
    Tensor k, v;
  };
  std::vector<std::vector<Layer>> sequences;
};

// One forward pass: graph input "tokens" i32 [rows], "positions" i32 [rows] (each row's
// position in its sequence), and, when not every row's logits are wanted, "logit_rows"
// i32 [outputs] naming the rows whose logits are returned.
struct BatchLayout {
  struct Part {
    int sequence = 0;
    AttentionSegment rows;
  };
  std::vector<Part> parts;
  int64_t rows = 0;
  bool all_logits = true;
  int64_t logit_rows = 0;
};

// Loads GGUF-named tensors from a ModelSource, checking each one's shape.
class WeightLoader {
 public:
  WeightLoader(const ModelSource& source, std::filesystem::path path);
  bool has(const std::string& name) const { return by_name_.contains(name); }
  // A matrix in its own type when the linear kernels read that type in place (the float
  // types and q8_0, q4_0, q4_1, q4_k, q6_k); any other type is widened to f32.
  Result<Tensor> matrix(const std::string& name, const Shape& shape) const;
  // Norm weights and biases feed ops that take f32 only (ember/graph.h).
  Result<Tensor> f32_vector(const std::string& name, int64_t length) const;
  // token_embd.weight and the output matrix: output.weight, or token_embd when tied.
  Status embeddings_and_output(const ModelConfig& config, ModelWeights& model) const;
  // An optional f32 vector: undefined when the file does not have it.
  Result<Tensor> optional_f32_vector(const std::string& name, int64_t length) const;

 private:
  Result<Tensor> load(const std::string& name, const Shape& shape) const;

  std::filesystem::path path_;
  std::map<std::string, const SourceTensor*, std::less<>> by_name_;
};

// Rows [first, first + count) of `matrix` (or elements, of a vector) as a tensor over a
// buffer of its own on the same bytes, not a view into the whole: kernels that take
// whole buffers (the Vulkan shaders bind them from their first byte; the CPU interleaves
// a weight's rows per buffer) then treat the part as a matrix the file held apart.
// GPT-2's fused attn_qkv is split this way.
Result<Tensor> rows_in_own_buffer(const Tensor& matrix, int64_t first, int64_t count);

// In a loader returning Result: assigns the loaded tensor to `slot`, or returns its error.
#define EMBER_LOAD(slot, expression)     \
  do {                                   \
    auto loaded = (expression);          \
    if (!loaded) return loaded.status(); \
    (slot) = std::move(loaded.value());  \
  } while (false)

// Builders shared by the architectures.
class TransformerGraph {
 public:
  TransformerGraph(Graph& graph, const BatchLayout& layout, const KvCaches& caches);
  Graph& graph() { return graph_; }
  NodeId tokens() const { return tokens_; }
  NodeId positions() const { return positions_; }
  // A constant node, or kInvalidNode for an undefined (absent) tensor.
  NodeId constant(std::string name, const Tensor& value);
  // q [rows, heads, d], k and v [rows, kv_heads, d] -> attention of each part over its
  // sequence's cache of `layer`, [rows, heads, d].
  NodeId cached_attention(NodeId q, NodeId k, NodeId v, size_t layer, float scale);
  // The rows whose logits are wanted, then `output` (with its optional bias) applied.
  NodeId logits(NodeId hidden, const Tensor& output);

 private:
  Graph& graph_;
  const BatchLayout& layout_;
  const KvCaches& caches_;
  NodeId tokens_ = kInvalidNode;
  NodeId positions_ = kInvalidNode;
  NodeId logit_rows_ = kInvalidNode;
};

// Each architecture: check the config, load the weights, build the graph of one batch.
Status check_llama_config(const ModelConfig& config, const std::filesystem::path& path);
Result<ModelWeights> load_llama_weights(const ModelConfig& config, const WeightLoader& weights);
Status build_llama_graph(const ModelConfig& config, const ModelWeights& weights, TransformerGraph& builder);

Status check_gpt2_config(const ModelConfig& config, const std::filesystem::path& path);
Result<ModelWeights> load_gpt2_weights(const ModelConfig& config, const WeightLoader& weights);
Status build_gpt2_graph(const ModelConfig& config, const ModelWeights& weights, TransformerGraph& builder);

}  // namespace ember
