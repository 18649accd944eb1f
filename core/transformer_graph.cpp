#include <fmt/format.h>

#include "core/model_weights.h"

namespace ember {

TransformerGraph::TransformerGraph(Graph& graph, const BatchLayout& layout, const KvCaches& caches)
    : graph_(graph), layout_(layout), caches_(caches) {
  tokens_ = graph_.input("tokens", Shape{layout.rows}, DType::i32);
  positions_ = graph_.input("positions", Shape{layout.rows}, DType::i32);
  if (!layout.all_logits) logit_rows_ = graph_.input("logit_rows", Shape{layout.logit_rows}, DType::i32);
}

NodeId TransformerGraph::constant(std::string name, const Tensor& value) {
  return value.defined() ? graph_.constant(std::move(name), value) : kInvalidNode;
}

NodeId TransformerGraph::cached_attention(NodeId q, NodeId k, NodeId v, size_t layer, float scale) {
  std::vector<Graph::CacheSegment> segments;
  segments.reserve(layout_.parts.size());
  for (const BatchLayout::Part& part : layout_.parts) {
    const KvCaches::Layer& cache = caches_.sequences[static_cast<size_t>(part.sequence)][layer];
    const std::string prefix = fmt::format("cache.{}.blk.{}.", part.sequence, layer);
    segments.push_back({graph_.constant(prefix + "k", cache.k), graph_.constant(prefix + "v", cache.v), part.rows});
  }
  return graph_.cached_attention(q, k, v, segments, scale);
}

NodeId TransformerGraph::logits(NodeId hidden, const Tensor& output) {
  // Picking rows before the output matrix saves its [rows, vocab] product for every
  // prompt row but the last.
  const NodeId wanted = layout_.all_logits ? hidden : graph_.embedding(hidden, logit_rows_);
  return graph_.linear(wanted, constant("output.weight", output), kInvalidNode);
}

}  // namespace ember
