#include "ember/model.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "core/model_weights.h"
#include "core/offload.h"
#include "ember/gguf.h"

namespace ember {
namespace {

Result<ModelConfig> read_config(const std::filesystem::path& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) return read_model_config(path / "config.json");
  auto file = GgufFile::open(path);
  if (!file) return file.status();
  return model_config_from_gguf(file.value());
}

bool is_gpt2(const ModelConfig& config) { return config.architecture == Architecture::gpt2; }

Result<Tensor> i32_tensor(const std::vector<int32_t>& values) {
  auto tensor = Tensor::empty(Shape{static_cast<int64_t>(values.size())}, DType::i32);
  if (!tensor) return tensor.status();
  auto data = tensor->write<int32_t>();
  if (!data) return data.status();
  std::memcpy(data.value(), values.data(), values.size() * sizeof(int32_t));
  return tensor;
}

int64_t tensor_bytes(const Tensor& tensor) { return tensor.defined() ? static_cast<int64_t>(tensor.payload_bytes()) : 0; }

// Pins every weight byte in RAM (mlock), mapped file pages included, so the kernel never
// evicts them between tokens: a model mapped from a file otherwise streams from disk
// again whenever memory pressure (or a proactive reclaimer such as DAMON) drops its pages.
Status lock_in_memory(const ModelWeights& weights, const std::filesystem::path& path) {
  Status status;
  weights.for_each([&](const Tensor& tensor) {
    if (!status.ok() || !tensor.defined()) return;
    auto bytes = tensor.read<std::byte>();
    if (!bytes) {
      status = bytes.status();
      return;
    }
    if (::mlock(bytes.value(), tensor.payload_bytes()) != 0) {
      status = Status(ErrorCode::out_of_memory,
                      fmt::format("{}: cannot lock the weights in memory ({}); raise `ulimit -l` or drop --mlock",
                                  path.string(), std::strerror(errno)));
      return;
    }
    tensor.buffer()->mark_locked();
  });
  return status;
}

}  // namespace

Model::Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Result<Model> Model::load(const std::filesystem::path& path, const ModelOptions& options) {
  auto config = read_config(path);
  if (!config) return config.status();
  const ModelConfig& c = config.value();
  EMBER_RETURN_IF_ERROR(is_gpt2(c) ? check_gpt2_config(c, path) : check_llama_config(c, path));
  const DType kv_type = options.kv_cache_type;
  if (kv_type != DType::f32 && kv_type != DType::f16 && kv_type != DType::q8_0)
    return invalid_argument(fmt::format("KV cache type {}: f32, f16 or q8_0 only", dtype_name(kv_type)));
  if (kv_type == DType::q8_0 && c.head_dim % block_elements(DType::q8_0) != 0)
    return invalid_argument(fmt::format("KV cache type q8_0 needs a head size that is a multiple of {}; {} has {}",
                                        block_elements(DType::q8_0), path.string(), c.head_dim));
  if (options.context_length < 0)
    return invalid_argument(fmt::format("context length {} is negative", options.context_length));
  // Learned position embeddings end at the model's own context length.
  if (is_gpt2(c) && options.context_length > c.context_length)
    return invalid_argument(fmt::format("context length {} is past this GPT-2 model's {} learned positions",
                                        options.context_length, c.context_length));
  if (options.sequences < 1)
    return invalid_argument(fmt::format("{} sequences: at least one is needed", options.sequences));

  auto source = open_model_source(path);
  if (!source) return source.status();
  const WeightLoader loader(source.value(), path);
  auto weights = is_gpt2(c) ? load_gpt2_weights(c, loader) : load_llama_weights(c, loader);
  if (!weights) return weights.status();

  Model model;
  model.config_ = c;
  model.kv_cache_type_ = kv_type;
  model.context_length_ = options.context_length > 0 ? options.context_length : c.context_length;
  model.weights_ = std::make_unique<ModelWeights>(std::move(weights.value()));
  if (options.lock_weights) EMBER_RETURN_IF_ERROR(lock_in_memory(*model.weights_, path));
  auto offload = open_offload_backend(options.offload, *model.weights_);
  if (!offload) return offload.status();
  if (offload.value() != nullptr) model.executor_.prefer_backend(std::move(offload.value()));
  model.caches_ = std::make_unique<KvCaches>();
  model.cached_tokens_.assign(static_cast<size_t>(options.sequences), 0);
  const Shape cache_shape{model.context_length_, c.kv_head_count, c.head_dim};
  for (int s = 0; s < options.sequences; ++s) {
    std::vector<KvCaches::Layer> layers;
    for (int64_t i = 0; i < c.layer_count; ++i) {
      auto k = Tensor::empty(cache_shape, kv_type);
      if (!k) return k.status();
      auto v = Tensor::empty(cache_shape, kv_type);
      if (!v) return v.status();
      layers.push_back({std::move(k.value()), std::move(v.value())});
    }
    model.caches_->sequences.push_back(std::move(layers));
  }
  return model;
}

int64_t Model::cached_tokens(int sequence) const {
  return sequence >= 0 && sequence < sequences() ? cached_tokens_[static_cast<size_t>(sequence)] : 0;
}

int64_t Model::parameter_count() const {
  int64_t count = 0;
  weights_->for_each([&count](const Tensor& tensor) { count += tensor.defined() ? tensor.elements() : 0; });
  return count;
}

int64_t Model::weight_bytes() const {
  int64_t bytes = 0;
  weights_->for_each([&bytes](const Tensor& tensor) { bytes += tensor_bytes(tensor); });
  return bytes;
}

int64_t Model::kv_cache_bytes() const {
  int64_t bytes = 0;
  for (const auto& layers : caches_->sequences)
    for (const KvCaches::Layer& layer : layers) bytes += tensor_bytes(layer.k) + tensor_bytes(layer.v);
  return bytes;
}

Result<Tensor> Model::forward(std::span<const int32_t> tokens, int64_t position) {
  const SequenceTokens part{0, position, tokens, true};
  return forward(std::span<const SequenceTokens>(&part, 1));
}

// The last pass's graph when `layout` has the same parts with the same token counts: only
// where their rows go in the caches differs (ids and positions are inputs), so its attention
// nodes move there. Building M's graph anew took about as long as its decoded token's
// rms_norms, adds and ropes together on the CPU (docs/PERFORMANCE.md, fifteenth session).
std::unique_ptr<Graph> Model::reusable_graph(const BatchLayout& layout) {
  if (!last_graph_ || layout.all_logits != last_all_logits_ || layout.logit_rows != last_logit_rows_ ||
      layout.parts.size() != last_sequences_.size())
    return nullptr;
  std::vector<AttentionSegment> rows;
  for (size_t i = 0; i < layout.parts.size(); ++i) {
    if (layout.parts[i].sequence != last_sequences_[i] || layout.parts[i].rows.tokens != last_rows_[i].tokens)
      return nullptr;
    rows.push_back(layout.parts[i].rows);
  }
  for (NodeId id = 0; id < static_cast<NodeId>(last_graph_->size()); ++id)
    if (last_graph_->node(id).op == Op::cached_attention && !last_graph_->move_segments(id, rows).ok()) return nullptr;
  return std::move(last_graph_);
}

Result<Tensor> Model::forward(std::span<const SequenceTokens> batch) {
  if (batch.empty()) return invalid_argument("forward: no tokens given");
  BatchLayout layout;
  layout.all_logits = true;
  for (const SequenceTokens& part : batch) layout.all_logits = layout.all_logits && part.all_logits;
  std::vector<int32_t> ids, positions, logit_rows;
  std::set<int> seen;
  for (const SequenceTokens& part : batch) {
    const auto count = static_cast<int64_t>(part.tokens.size());
    if (count == 0) return invalid_argument(fmt::format("forward: no tokens given for sequence {}", part.sequence));
    if (part.sequence < 0 || part.sequence >= sequences())
      return invalid_argument(fmt::format("forward: sequence {} does not exist; the model has {} (option sequences)",
                                          part.sequence, sequences()));
    if (!seen.insert(part.sequence).second)
      return invalid_argument(fmt::format("forward: sequence {} appears twice in one batch", part.sequence));
    const int64_t cached = cached_tokens(part.sequence);
    if (part.position < 0 || part.position > cached)
      return invalid_argument(fmt::format("forward at position {}: the KV cache of sequence {} holds positions 0..{} "
                                          "only, so a batch may start at {} at most",
                                          part.position, part.sequence, cached - 1, cached));
    if (part.position + count > context_length_)
      return out_of_range(fmt::format("forward of {} tokens at position {} runs past the context length {}", count,
                                      part.position, context_length_));
    for (int64_t i = 0; i < count; ++i) {
      if (part.tokens[i] < 0 || part.tokens[i] >= config_.vocab_size)
        return out_of_range(fmt::format("token id {} (index {}) is outside the vocabulary of {} tokens",
                                        part.tokens[i], i, config_.vocab_size));
      ids.push_back(part.tokens[i]);
      positions.push_back(static_cast<int32_t>(part.position + i));
      if (part.all_logits || i + 1 == count) logit_rows.push_back(static_cast<int32_t>(layout.rows + i));
    }
    layout.parts.push_back({part.sequence, {count, part.position}});
    layout.rows += count;
  }
  layout.logit_rows = static_cast<int64_t>(logit_rows.size());

  std::unique_ptr<Graph> graph = reusable_graph(layout);
  if (!graph) {
    graph = std::make_unique<Graph>();
    TransformerGraph builder(*graph, layout, *caches_);
    EMBER_RETURN_IF_ERROR(is_gpt2(config_) ? build_gpt2_graph(config_, *weights_, builder)
                                           : build_llama_graph(config_, *weights_, builder));
  }
  last_sequences_.clear();
  last_rows_.clear();
  for (const BatchLayout::Part& part : layout.parts) {
    last_sequences_.push_back(part.sequence);
    last_rows_.push_back(part.rows);
  }
  last_all_logits_ = layout.all_logits;
  last_logit_rows_ = layout.logit_rows;
  std::vector<Tensor> inputs;
  for (const std::vector<int32_t>* values : {&ids, &positions, &logit_rows}) {
    if (values == &logit_rows && layout.all_logits) break;
    auto tensor = i32_tensor(*values);
    if (!tensor) return tensor.status();
    inputs.push_back(std::move(tensor.value()));
  }
  // Cache rows from each part's position on are about to be overwritten; if the run fails
  // part way they hold a mix, so only the rows before it stay valid.
  for (const SequenceTokens& part : batch) cached_tokens_[static_cast<size_t>(part.sequence)] = part.position;
  auto outputs = executor_.run(*graph, inputs);
  last_graph_ = std::move(graph);
  if (!outputs) return outputs.status();
  for (const SequenceTokens& part : batch)
    cached_tokens_[static_cast<size_t>(part.sequence)] = part.position + static_cast<int64_t>(part.tokens.size());
  return std::move(outputs.value().front());
}

Status Model::copy_sequence(int from, int to, int64_t tokens) {
  if (from < 0 || from >= sequences() || to < 0 || to >= sequences())
    return invalid_argument(fmt::format("copy_sequence from {} to {}: the model has {} sequences", from, to,
                                        sequences()));
  if (tokens < 0 || tokens > cached_tokens(from))
    return invalid_argument(fmt::format("copy_sequence of {} tokens: sequence {} has {} cached", tokens, from,
                                        cached_tokens(from)));
  if (from == to) return {};
  const auto row = static_cast<size_t>(row_bytes(kv_cache_type_, config_.kv_head_count * config_.head_dim));
  auto& source = caches_->sequences[static_cast<size_t>(from)];
  auto& target = caches_->sequences[static_cast<size_t>(to)];
  for (size_t layer = 0; layer < source.size(); ++layer)
    for (auto member : {&KvCaches::Layer::k, &KvCaches::Layer::v}) {
      auto in = (source[layer].*member).read<std::byte>();
      if (!in) return in.status();
      auto out = (target[layer].*member).write<std::byte>();
      if (!out) return out.status();
      std::memcpy(out.value(), in.value(), static_cast<size_t>(tokens) * row);
    }
  cached_tokens_[static_cast<size_t>(to)] = tokens;
  return {};
}

}  // namespace ember
