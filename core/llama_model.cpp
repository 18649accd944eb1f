#include "ember/llama_model.h"

#include <cmath>
#include <cstring>
#include <map>
#include <string>

#include <fmt/format.h>

#include "core/model_source.h"
#include "cpu/quantize.h"
#include "ember/gguf.h"
#include "ember/graph.h"
#include "quant/convert.h"

namespace ember {
namespace {

Result<ModelConfig> read_config(const std::filesystem::path& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) return read_model_config(path / "config.json");
  auto file = GgufFile::open(path);
  if (!file) return file.status();
  return model_config_from_gguf(file.value());
}

// An f32 copy of `tensor` (which may be f16, bf16 or block-quantized), rows kept.
Result<Tensor> to_f32(const Tensor& tensor) {
  if (tensor.dtype() == DType::f32) return tensor;
  auto dense = tensor.contiguous();
  if (!dense) return dense.status();
  auto bytes = dense->read<std::byte>();
  if (!bytes) return bytes.status();
  auto widened = Tensor::empty(tensor.shape(), DType::f32);
  if (!widened) return widened.status();
  auto out = widened->write<float>();
  if (!out) return out.status();
  const int64_t count = tensor.elements();
  const auto* halves = reinterpret_cast<const uint16_t*>(bytes.value());
  if (tensor.dtype() == DType::f16) {
    quant::f16_to_f32_row(halves, out.value(), count);
  } else if (tensor.dtype() == DType::bf16) {
    quant::bf16_to_f32_row(halves, out.value(), count);
  } else {
    const int64_t row_length = tensor.dim(tensor.rank() - 1);
    cpu::dequantize_rows(tensor.dtype(), bytes.value(), count / row_length, row_length, out.value());
  }
  return widened;
}

// Loads GGUF-named tensors from a ModelSource, checking each one's shape.
class WeightLoader {
 public:
  WeightLoader(const ModelSource& source, std::filesystem::path path) : path_(std::move(path)) {
    for (const SourceTensor& tensor : source.tensors) by_name_.emplace(tensor.name, &tensor);
  }

  bool has(const std::string& name) const { return by_name_.contains(name); }

  // A matrix in its own type, except that block-quantized ones are dequantized to f32
  // here: the linear kernels do not read quantized blocks yet (issue #5).
  Result<Tensor> matrix(const std::string& name, const Shape& shape) const {
    auto tensor = load(name, shape);
    if (!tensor || is_float(tensor->dtype())) return tensor;
    return to_f32(tensor.value());
  }

  // Norm weights and biases go into ops that take f32 only (ember/graph.h).
  Result<Tensor> f32_vector(const std::string& name, int64_t length) const {
    auto tensor = load(name, Shape{length});
    if (!tensor) return tensor;
    return to_f32(tensor.value());
  }

 private:
  Result<Tensor> load(const std::string& name, const Shape& shape) const {
    auto found = by_name_.find(name);
    if (found == by_name_.end())
      return invalid_argument(fmt::format("{}: tensor '{}' is missing", path_.string(), name));
    const SourceTensor& source = *found->second;
    if (source.shape != shape)
      return invalid_argument(fmt::format("{}: tensor '{}' is {}; the config needs {}", path_.string(), name,
                                          source.shape.str(), shape.str()));
    return source.load();
  }

  std::filesystem::path path_;
  std::map<std::string, const SourceTensor*, std::less<>> by_name_;
};

}  // namespace

Result<LlamaModel> LlamaModel::load(const std::filesystem::path& path, const LlamaLoadOptions& options) {
  auto config = read_config(path);
  if (!config) return config.status();
  const ModelConfig& c = config.value();
  if (c.architecture != Architecture::llama && c.architecture != Architecture::qwen2)
    return unsupported(fmt::format("{}: architecture '{}' is not a Llama-family model (llama, mistral, qwen2)",
                                   path.string(), architecture_name(c.architecture)));
  // The rope op turns position p by p·θᵢ; linear scaling would need p/factor.
  if (c.rope_scaling != RopeScaling::none)
    return unsupported(fmt::format("{}: rope scaling is not supported by the Llama forward pass", path.string()));
  if (options.kv_cache_type != DType::f32 && options.kv_cache_type != DType::f16)
    return invalid_argument(fmt::format("KV cache type {}: f32 or f16 only", dtype_name(options.kv_cache_type)));
  if (options.context_length < 0)
    return invalid_argument(fmt::format("context length {} is negative", options.context_length));

  auto source = open_model_source(path);
  if (!source) return source.status();
  const WeightLoader weights(source.value(), path);

  LlamaModel model;
  model.config_ = c;
  model.context_length_ = options.context_length > 0 ? options.context_length : c.context_length;
  const int64_t q_rows = c.head_count * c.head_dim, kv_rows = c.kv_head_count * c.head_dim;
  const int64_t hidden = c.hidden_size;

  // Assigns the loaded tensor to `slot`, or returns its error from load().
#define EMBER_LOAD(slot, expression)          \
  do {                                        \
    auto loaded = (expression);               \
    if (!loaded) return loaded.status();      \
    (slot) = std::move(loaded.value());       \
  } while (false)

  EMBER_LOAD(model.token_embd_, weights.matrix("token_embd.weight", Shape{c.vocab_size, hidden}));
  EMBER_LOAD(model.output_norm_, weights.f32_vector("output_norm.weight", hidden));
  if (weights.has("output.weight")) {
    EMBER_LOAD(model.output_, weights.matrix("output.weight", Shape{c.vocab_size, hidden}));
  } else {
    model.output_ = model.token_embd_;
  }
  for (int64_t i = 0; i < c.layer_count; ++i) {
    const std::string prefix = fmt::format("blk.{}.", i);
    Layer layer;
    EMBER_LOAD(layer.attn_norm, weights.f32_vector(prefix + "attn_norm.weight", hidden));
    EMBER_LOAD(layer.wq, weights.matrix(prefix + "attn_q.weight", Shape{q_rows, hidden}));
    EMBER_LOAD(layer.wk, weights.matrix(prefix + "attn_k.weight", Shape{kv_rows, hidden}));
    EMBER_LOAD(layer.wv, weights.matrix(prefix + "attn_v.weight", Shape{kv_rows, hidden}));
    EMBER_LOAD(layer.wo, weights.matrix(prefix + "attn_output.weight", Shape{hidden, q_rows}));
    const std::pair<Tensor*, std::pair<const char*, int64_t>> biases[] = {
        {&layer.bq, {"attn_q.bias", q_rows}},
        {&layer.bk, {"attn_k.bias", kv_rows}},
        {&layer.bv, {"attn_v.bias", kv_rows}},
        {&layer.bo, {"attn_output.bias", hidden}}};
    for (const auto& [slot, bias] : biases)
      if (weights.has(prefix + bias.first)) EMBER_LOAD(*slot, weights.f32_vector(prefix + bias.first, bias.second));
    EMBER_LOAD(layer.ffn_norm, weights.f32_vector(prefix + "ffn_norm.weight", hidden));
    EMBER_LOAD(layer.w_gate, weights.matrix(prefix + "ffn_gate.weight", Shape{c.ffn_size, hidden}));
    EMBER_LOAD(layer.w_up, weights.matrix(prefix + "ffn_up.weight", Shape{c.ffn_size, hidden}));
    EMBER_LOAD(layer.w_down, weights.matrix(prefix + "ffn_down.weight", Shape{hidden, c.ffn_size}));
    const Shape cache_shape{model.context_length_, c.kv_head_count, c.head_dim};
    EMBER_LOAD(layer.k_cache, Tensor::empty(cache_shape, options.kv_cache_type));
    EMBER_LOAD(layer.v_cache, Tensor::empty(cache_shape, options.kv_cache_type));
    model.layers_.push_back(std::move(layer));
  }
#undef EMBER_LOAD
  return model;
}

Result<Graph> LlamaModel::build_graph(int64_t tokens, int64_t position) const {
  const ModelConfig& c = config_;
  const int64_t heads = c.head_count, kv_heads = c.kv_head_count, head_dim = c.head_dim;
  // GGUF llama q/k rows are permuted for adjacent-pair rotation; qwen2's keep HF order.
  const RopeStyle style = c.architecture == Architecture::qwen2 ? RopeStyle::neox : RopeStyle::normal;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));

  Graph graph;
  const auto constant = [&graph](std::string name, const Tensor& value) {
    return value.defined() ? graph.constant(std::move(name), value) : kInvalidNode;
  };
  const NodeId ids = graph.input("tokens", Shape{tokens}, DType::i32);
  NodeId x = graph.embedding(constant("token_embd.weight", token_embd_), ids);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& layer = layers_[i];
    const std::string prefix = fmt::format("blk.{}.", i);
    const auto weight = [&](const char* name, const Tensor& value) { return constant(prefix + name, value); };

    NodeId h = graph.rms_norm(x, weight("attn_norm.weight", layer.attn_norm), c.norm_eps);
    const NodeId q_flat = graph.linear(h, weight("attn_q.weight", layer.wq), weight("attn_q.bias", layer.bq));
    const NodeId k_flat = graph.linear(h, weight("attn_k.weight", layer.wk), weight("attn_k.bias", layer.bk));
    const NodeId v_flat = graph.linear(h, weight("attn_v.weight", layer.wv), weight("attn_v.bias", layer.bv));
    const NodeId q = graph.rope(graph.reshape(q_flat, Shape{tokens, heads, head_dim}), style, 0, c.rope_theta, position);
    const NodeId k =
        graph.rope(graph.reshape(k_flat, Shape{tokens, kv_heads, head_dim}), style, 0, c.rope_theta, position);
    const NodeId v = graph.reshape(v_flat, Shape{tokens, kv_heads, head_dim});
    const NodeId attended = graph.cached_attention(q, k, v, weight("k_cache", layer.k_cache),
                                                   weight("v_cache", layer.v_cache), scale, position);
    const NodeId projected = graph.linear(graph.reshape(attended, Shape{tokens, heads * head_dim}),
                                          weight("attn_output.weight", layer.wo), weight("attn_output.bias", layer.bo));
    x = graph.add(x, projected);

    h = graph.rms_norm(x, weight("ffn_norm.weight", layer.ffn_norm), c.norm_eps);
    const NodeId gate = graph.linear(h, weight("ffn_gate.weight", layer.w_gate), kInvalidNode);
    const NodeId up = graph.linear(h, weight("ffn_up.weight", layer.w_up), kInvalidNode);
    x = graph.add(x, graph.linear(graph.swiglu(gate, up), weight("ffn_down.weight", layer.w_down), kInvalidNode));
  }
  const NodeId normed = graph.rms_norm(x, constant("output_norm.weight", output_norm_), c.norm_eps);
  graph.mark_output(graph.linear(normed, constant("output.weight", output_), kInvalidNode));
  if (!graph.ok()) return graph.status();
  return graph;
}

Result<Tensor> LlamaModel::forward(std::span<const int32_t> tokens, int64_t position) {
  const auto count = static_cast<int64_t>(tokens.size());
  if (count == 0) return invalid_argument("forward: no tokens given");
  if (position < 0 || position > cached_tokens_)
    return invalid_argument(fmt::format("forward at position {}: the KV cache holds positions 0..{} only, so a "
                                        "batch may start at {} at most",
                                        position, cached_tokens_ - 1, cached_tokens_));
  if (position + count > context_length_)
    return out_of_range(fmt::format("forward of {} tokens at position {} runs past the context length {}", count,
                                    position, context_length_));
  for (int64_t i = 0; i < count; ++i)
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size)
      return out_of_range(fmt::format("token id {} (index {}) is outside the vocabulary of {} tokens", tokens[i], i,
                                      config_.vocab_size));

  auto ids = Tensor::empty(Shape{count}, DType::i32);
  if (!ids) return ids.status();
  auto ids_data = ids->write<int32_t>();
  if (!ids_data) return ids_data.status();
  std::memcpy(ids_data.value(), tokens.data(), tokens.size_bytes());

  auto graph = build_graph(count, position);
  if (!graph) return graph.status();
  // The cache rows from `position` on are about to be overwritten; if the run fails
  // part way they hold a mix, so only the rows before it stay valid.
  cached_tokens_ = position;
  auto outputs = executor_.run(graph.value(), std::span<const Tensor>(&ids.value(), 1));
  if (!outputs) return outputs.status();
  cached_tokens_ = position + count;
  return std::move(outputs.value().front());
}

}  // namespace ember
