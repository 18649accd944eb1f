// The Llama family (llama, mistral, qwen2): RMSNorm, rotary positions, grouped-query
// attention, SwiGLU.
#include <cmath>

#include <fmt/format.h>

#include "core/model_weights.h"

namespace ember {

Status check_llama_config(const ModelConfig& config, const std::filesystem::path& path) {
  if (config.architecture != Architecture::llama && config.architecture != Architecture::qwen2)
    return unsupported(fmt::format("{}: architecture '{}' is not a Llama-family model", path.string(),
                                   architecture_name(config.architecture)));
  return {};
}

Result<ModelWeights> load_llama_weights(const ModelConfig& c, const WeightLoader& weights) {
  const int64_t q_rows = c.head_count * c.head_dim, kv_rows = c.kv_head_count * c.head_dim;
  const int64_t hidden = c.hidden_size;
  ModelWeights model;
  EMBER_RETURN_IF_ERROR(weights.embeddings_and_output(c, model));
  EMBER_LOAD(model.output_norm, weights.f32_vector("output_norm.weight", hidden));
  for (int64_t i = 0; i < c.layer_count; ++i) {
    const std::string prefix = fmt::format("blk.{}.", i);
    LayerWeights layer;
    EMBER_LOAD(layer.attn_norm, weights.f32_vector(prefix + "attn_norm.weight", hidden));
    EMBER_LOAD(layer.wq, weights.matrix(prefix + "attn_q.weight", Shape{q_rows, hidden}));
    EMBER_LOAD(layer.wk, weights.matrix(prefix + "attn_k.weight", Shape{kv_rows, hidden}));
    EMBER_LOAD(layer.wv, weights.matrix(prefix + "attn_v.weight", Shape{kv_rows, hidden}));
    EMBER_LOAD(layer.wo, weights.matrix(prefix + "attn_output.weight", Shape{hidden, q_rows}));
    EMBER_LOAD(layer.bq, weights.optional_f32_vector(prefix + "attn_q.bias", q_rows));
    EMBER_LOAD(layer.bk, weights.optional_f32_vector(prefix + "attn_k.bias", kv_rows));
    EMBER_LOAD(layer.bv, weights.optional_f32_vector(prefix + "attn_v.bias", kv_rows));
    EMBER_LOAD(layer.bo, weights.optional_f32_vector(prefix + "attn_output.bias", hidden));
    EMBER_LOAD(layer.ffn_norm, weights.f32_vector(prefix + "ffn_norm.weight", hidden));
    EMBER_LOAD(layer.w_gate, weights.matrix(prefix + "ffn_gate.weight", Shape{c.ffn_size, hidden}));
    EMBER_LOAD(layer.w_up, weights.matrix(prefix + "ffn_up.weight", Shape{c.ffn_size, hidden}));
    EMBER_LOAD(layer.w_down, weights.matrix(prefix + "ffn_down.weight", Shape{hidden, c.ffn_size}));
    model.layers.push_back(std::move(layer));
  }
  return model;
}

Status build_llama_graph(const ModelConfig& c, const ModelWeights& weights, TransformerGraph& builder) {
  Graph& graph = builder.graph();
  const int64_t rows = graph.node(builder.tokens()).shape[0];
  const int64_t heads = c.head_count, kv_heads = c.kv_head_count, head_dim = c.head_dim;
  // GGUF llama q/k rows are permuted for adjacent-pair rotation; qwen2's keep HF order.
  const RopeStyle style = c.architecture == Architecture::qwen2 ? RopeStyle::neox : RopeStyle::normal;
  const float position_scale = c.rope_scaling == RopeScaling::linear ? 1.0f / c.rope_scaling_factor : 1.0f;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const auto rope = [&](NodeId x) {
    return graph.rope(x, builder.positions(), style, 0, c.rope_theta, position_scale);
  };

  NodeId x = graph.embedding(builder.constant("token_embd.weight", weights.token_embd), builder.tokens());
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    const LayerWeights& layer = weights.layers[i];
    const std::string prefix = fmt::format("blk.{}.", i);
    const auto weight = [&](const char* name, const Tensor& value) { return builder.constant(prefix + name, value); };

    NodeId h = graph.rms_norm(x, weight("attn_norm.weight", layer.attn_norm), c.norm_eps);
    const NodeId q_flat = graph.linear(h, weight("attn_q.weight", layer.wq), weight("attn_q.bias", layer.bq));
    const NodeId k_flat = graph.linear(h, weight("attn_k.weight", layer.wk), weight("attn_k.bias", layer.bk));
    const NodeId v_flat = graph.linear(h, weight("attn_v.weight", layer.wv), weight("attn_v.bias", layer.bv));
    const NodeId q = rope(graph.reshape(q_flat, Shape{rows, heads, head_dim}));
    const NodeId k = rope(graph.reshape(k_flat, Shape{rows, kv_heads, head_dim}));
    const NodeId v = graph.reshape(v_flat, Shape{rows, kv_heads, head_dim});
    const NodeId attended = builder.cached_attention(q, k, v, i, scale);
    const NodeId projected = graph.linear(graph.reshape(attended, Shape{rows, heads * head_dim}),
                                          weight("attn_output.weight", layer.wo), weight("attn_output.bias", layer.bo));
    x = graph.add(x, projected);

    h = graph.rms_norm(x, weight("ffn_norm.weight", layer.ffn_norm), c.norm_eps);
    const NodeId gate = graph.linear(h, weight("ffn_gate.weight", layer.w_gate), kInvalidNode);
    const NodeId up = graph.linear(h, weight("ffn_up.weight", layer.w_up), kInvalidNode);
    x = graph.add(x, graph.linear(graph.swiglu(gate, up), weight("ffn_down.weight", layer.w_down), kInvalidNode));
  }
  const NodeId normed = graph.rms_norm(x, builder.constant("output_norm.weight", weights.output_norm), c.norm_eps);
  graph.mark_output(builder.logits(normed, weights.output));
  return graph.status();
}

}  // namespace ember
