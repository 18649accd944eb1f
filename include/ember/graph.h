// Graph: a list of nodes in execution order; every node's inputs come before it.
//
// Builders infer and check the output shape and dtype. A bad request (shape mismatch,
// wrong dtype) does not throw: the graph records the first error, the builder returns
// kInvalidNode, every later builder given kInvalidNode returns it too, and status()
// says what went wrong and at which node. Check ok() once after building.
//
// Optional inputs (linear's bias, the norms' weight and bias) keep their place in
// Node::inputs as kInvalidNode, so a backend reads input i as the same role always.
//
// Activations are f32. Weights (matmul's b, linear's weight, embedding tables) may be
// f32, f16 or bf16; attention's K and V f32 or f16; embedding ids i32.
//
// One node writes into its inputs: cached_attention stores the new keys and values
// into its k_cache and v_cache (constants the caller owns, such as a model session's
// KV cache) before attending. Every other node only reads its inputs.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "ember/ops.h"
#include "ember/status.h"
#include "ember/tensor.h"

namespace ember {

using NodeId = int32_t;
inline constexpr NodeId kInvalidNode = -1;

struct Node {
  Op op = Op::input;
  std::vector<NodeId> inputs;
  Shape shape;
  DType dtype = DType::f32;
  OpParams params;
  std::string name;
  Tensor value;  // constants only
};

class Graph {
 public:
  NodeId input(std::string name, const Shape& shape, DType dtype = DType::f32);
  NodeId constant(std::string name, Tensor value);

  NodeId matmul(NodeId a, NodeId b, bool transpose_b = false);
  // x[..., in], weight[out, in], bias[out] or kInvalidNode -> [..., out]
  NodeId linear(NodeId x, NodeId weight, NodeId bias, Activation act = Activation::none);

  NodeId add(NodeId a, NodeId b);
  NodeId sub(NodeId a, NodeId b);
  NodeId mul(NodeId a, NodeId b);
  NodeId div(NodeId a, NodeId b);
  NodeId add_relu(NodeId a, NodeId b);
  NodeId affine(NodeId x, NodeId scale, NodeId shift);
  NodeId scale(NodeId x, float factor);
  NodeId activation(NodeId x, Activation act);

  NodeId sum(NodeId x, int axis);
  NodeId max(NodeId x, int axis);
  NodeId mean(NodeId x, int axis);

  // softmax(factor * x) over the last axis. With causal, x is [..., queries, keys] and
  // query q (position position_offset + q) sees keys 0..position_offset + q.
  NodeId softmax(NodeId x, float factor = 1.0f, bool causal = false, int64_t position_offset = 0);
  NodeId rms_norm(NodeId x, NodeId weight, float eps);                   // weight may be kInvalidNode
  NodeId layer_norm(NodeId x, NodeId weight, NodeId bias, float eps);    // either may be kInvalidNode
  // x: [tokens, heads, head_dim]; rotary_dims 0 means head_dim.
  NodeId rope(NodeId x, RopeStyle style, int64_t rotary_dims, float base, int64_t position_offset);
  // The same with token t at position positions[t] (i32 [tokens]) times position_scale
  // (linear rope scaling divides positions by its factor).
  NodeId rope(NodeId x, NodeId positions, RopeStyle style, int64_t rotary_dims, float base, float position_scale);
  NodeId swiglu(NodeId gate, NodeId up);
  // table[rows, cols], ids i32[count] -> [count, cols]
  NodeId embedding(NodeId table, NodeId ids);
  // q[tokens, q_heads, d], k/v[kv_length, kv_heads, d] -> [tokens, q_heads, d]
  NodeId attention(NodeId q, NodeId k, NodeId v, float scale, int64_t position_offset);
  // Attention of a batch of several sequences over their KV caches. q [tokens, q_heads,
  // d], k_new and v_new [tokens, kv_heads, d] hold the segments' rows one after another;
  // segment s stores its keys and values into rows position..position + tokens of its
  // caches ([capacity, kv_heads, d], both f32, f16 or q8_0, contiguous; q8_0 needs d a
  // multiple of 32), then its queries attend causally over rows 0..position + tokens, as
  // attention() does with position_offset = position -> [tokens, q_heads, d].
  // The caches are modified in place, so graphs sharing them must run one at a time.
  struct CacheSegment {
    NodeId k_cache = kInvalidNode;
    NodeId v_cache = kInvalidNode;
    AttentionSegment rows;
  };
  NodeId cached_attention(NodeId q, NodeId k_new, NodeId v_new, std::span<const CacheSegment> segments, float scale);
  // Moves the segments of cached_attention node `id` to new positions in the same caches,
  // each with the tokens it had, so a graph is reused for the next rows of its sequences.
  // The graph is unchanged when the node is not a cached_attention of that many segments,
  // a token count differs, or a segment would run past its cache.
  Status move_segments(NodeId id, std::span<const AttentionSegment> rows);
  // The elements of x in row-major order, in `shape` (same element count).
  NodeId reshape(NodeId x, const Shape& shape);

  void mark_output(NodeId node);

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(NodeId id) const { return nodes_[static_cast<size_t>(id)]; }
  const std::vector<NodeId>& inputs() const { return inputs_; }
  const std::vector<NodeId>& outputs() const { return outputs_; }
  size_t size() const { return nodes_.size(); }

  // For graph passes (fusion): appends a node whose shape and dtype are already known.
  NodeId append(Node node);
  void set_name(NodeId id, std::string name);

 private:
  NodeId fail(std::string message);
  bool valid(std::initializer_list<NodeId> ids);
  NodeId broadcast_binary(Op op, NodeId a, NodeId b);
  NodeId reduction(Op op, NodeId x, int axis);
  bool expect(NodeId id, std::initializer_list<DType> allowed, std::string_view role, Op op);

  std::vector<Node> nodes_;
  std::vector<NodeId> inputs_;
  std::vector<NodeId> outputs_;
  Status status_;
};

// The shape NumPy broadcasting gives a and b, or an error naming both.
Result<Shape> broadcast_shapes(const Shape& a, const Shape& b);

}  // namespace ember
