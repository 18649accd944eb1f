// GPT-2: learned position embeddings, LayerNorm with biases, a fused qkv projection,
// a GELU MLP (the fused linear+bias+activation path), tied output.
#include <cmath>

#include <fmt/format.h>

#include "core/model_weights.h"

namespace ember {

Status check_gpt2_config(const ModelConfig& config, const std::filesystem::path& path) {
  if (config.architecture != Architecture::gpt2)
    return unsupported(fmt::format("{}: architecture '{}' is not GPT-2", path.string(),
                                   architecture_name(config.architecture)));
  if (config.kv_head_count != config.head_count || config.head_count * config.head_dim != config.hidden_size)
    return invalid_argument(fmt::format("{}: GPT-2 needs heads × head_dim = hidden and no grouped-query heads",
                                        path.string()));
  return {};
}

Result<ModelWeights> load_gpt2_weights(const ModelConfig& c, const WeightLoader& weights) {
  const int64_t hidden = c.hidden_size;
  ModelWeights model;
  EMBER_RETURN_IF_ERROR(weights.embeddings_and_output(c, model));
  EMBER_LOAD(model.position_embd, weights.matrix("position_embd.weight", Shape{c.context_length, hidden}));
  EMBER_LOAD(model.output_norm, weights.f32_vector("output_norm.weight", hidden));
  EMBER_LOAD(model.output_norm_bias, weights.f32_vector("output_norm.bias", hidden));
  for (int64_t i = 0; i < c.layer_count; ++i) {
    const std::string prefix = fmt::format("blk.{}.", i);
    LayerWeights layer;
    EMBER_LOAD(layer.attn_norm, weights.f32_vector(prefix + "attn_norm.weight", hidden));
    EMBER_LOAD(layer.attn_norm_bias, weights.f32_vector(prefix + "attn_norm.bias", hidden));
    Tensor qkv, qkv_bias;
    EMBER_LOAD(qkv, weights.matrix(prefix + "attn_qkv.weight", Shape{3 * hidden, hidden}));
    EMBER_LOAD(qkv_bias, weights.f32_vector(prefix + "attn_qkv.bias", 3 * hidden));
    // Each projection is the fused matrix's rows in a buffer of its own (no copy): a linear
    // node the executor routes on its own, whose weights both backends take whole.
    const std::pair<Tensor*, Tensor*> projections[] = {{&layer.wq, &layer.bq}, {&layer.wk, &layer.bk},
                                                       {&layer.wv, &layer.bv}};
    for (int64_t part = 0; part < 3; ++part) {
      EMBER_LOAD(*projections[part].first, rows_in_own_buffer(qkv, part * hidden, hidden));
      EMBER_LOAD(*projections[part].second, rows_in_own_buffer(qkv_bias, part * hidden, hidden));
    }
    EMBER_LOAD(layer.wo, weights.matrix(prefix + "attn_output.weight", Shape{hidden, hidden}));
    EMBER_LOAD(layer.bo, weights.f32_vector(prefix + "attn_output.bias", hidden));
    EMBER_LOAD(layer.ffn_norm, weights.f32_vector(prefix + "ffn_norm.weight", hidden));
    EMBER_LOAD(layer.ffn_norm_bias, weights.f32_vector(prefix + "ffn_norm.bias", hidden));
    EMBER_LOAD(layer.w_up, weights.matrix(prefix + "ffn_up.weight", Shape{c.ffn_size, hidden}));
    EMBER_LOAD(layer.b_up, weights.f32_vector(prefix + "ffn_up.bias", c.ffn_size));
    EMBER_LOAD(layer.w_down, weights.matrix(prefix + "ffn_down.weight", Shape{hidden, c.ffn_size}));
    EMBER_LOAD(layer.b_down, weights.f32_vector(prefix + "ffn_down.bias", hidden));
    model.layers.push_back(std::move(layer));
  }
  return model;
}

Status build_gpt2_graph(const ModelConfig& c, const ModelWeights& weights, TransformerGraph& builder) {
  Graph& graph = builder.graph();
  const int64_t rows = graph.node(builder.tokens()).shape[0];
  const int64_t heads = c.head_count, head_dim = c.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));

  NodeId x = graph.add(graph.embedding(builder.constant("token_embd.weight", weights.token_embd), builder.tokens()),
                       graph.embedding(builder.constant("position_embd.weight", weights.position_embd),
                                       builder.positions()));
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    const LayerWeights& layer = weights.layers[i];
    const std::string prefix = fmt::format("blk.{}.", i);
    const auto weight = [&](const char* name, const Tensor& value) { return builder.constant(prefix + name, value); };

    NodeId h = graph.layer_norm(x, weight("attn_norm.weight", layer.attn_norm),
                                weight("attn_norm.bias", layer.attn_norm_bias), c.norm_eps);
    const auto head_rows = [&](const char* name, const char* bias, const Tensor& w, const Tensor& b) {
      return graph.reshape(graph.linear(h, weight(name, w), weight(bias, b)), Shape{rows, heads, head_dim});
    };
    const NodeId q = head_rows("attn_q.weight", "attn_q.bias", layer.wq, layer.bq);
    const NodeId k = head_rows("attn_k.weight", "attn_k.bias", layer.wk, layer.bk);
    const NodeId v = head_rows("attn_v.weight", "attn_v.bias", layer.wv, layer.bv);
    const NodeId attended = builder.cached_attention(q, k, v, i, scale);
    x = graph.add(x, graph.linear(graph.reshape(attended, Shape{rows, heads * head_dim}),
                                  weight("attn_output.weight", layer.wo), weight("attn_output.bias", layer.bo)));

    h = graph.layer_norm(x, weight("ffn_norm.weight", layer.ffn_norm), weight("ffn_norm.bias", layer.ffn_norm_bias),
                         c.norm_eps);
    const NodeId up =
        graph.linear(h, weight("ffn_up.weight", layer.w_up), weight("ffn_up.bias", layer.b_up), Activation::gelu_tanh);
    x = graph.add(x, graph.linear(up, weight("ffn_down.weight", layer.w_down), weight("ffn_down.bias", layer.b_down)));
  }
  const NodeId normed = graph.layer_norm(x, builder.constant("output_norm.weight", weights.output_norm),
                                         builder.constant("output_norm.bias", weights.output_norm_bias), c.norm_eps);
  graph.mark_output(builder.logits(normed, weights.output));
  return graph.status();
}

}  // namespace ember
