#include "ember/graph.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace ember {

std::string_view op_name(Op op) {
  switch (op) {
    case Op::input: return "input";
    case Op::constant: return "constant";
    case Op::matmul: return "matmul";
    case Op::linear: return "linear";
    case Op::add: return "add";
    case Op::sub: return "sub";
    case Op::mul: return "mul";
    case Op::div: return "div";
    case Op::add_relu: return "add_relu";
    case Op::affine: return "affine";
    case Op::scale: return "scale";
    case Op::activation: return "activation";
    case Op::sum: return "sum";
    case Op::max: return "max";
    case Op::mean: return "mean";
    case Op::softmax: return "softmax";
    case Op::rms_norm: return "rms_norm";
    case Op::layer_norm: return "layer_norm";
    case Op::rope: return "rope";
    case Op::swiglu: return "swiglu";
    case Op::embedding: return "embedding";
    case Op::attention: return "attention";
    case Op::reshape: return "reshape";
    case Op::cached_attention: return "cached_attention";
  }
  return "unknown";
}

std::string_view activation_name(Activation act) {
  switch (act) {
    case Activation::none: return "none";
    case Activation::relu: return "relu";
    case Activation::gelu_tanh: return "gelu_tanh";
    case Activation::gelu_erf: return "gelu_erf";
    case Activation::silu: return "silu";
  }
  return "unknown";
}

Result<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  const int rank = std::max(a.rank(), b.rank());
  std::array<int64_t, kMaxDims> dims{};
  for (int i = 0; i < rank; ++i) {
    const int axis_a = a.rank() - rank + i, axis_b = b.rank() - rank + i;
    const int64_t da = axis_a >= 0 ? a[axis_a] : 1, db = axis_b >= 0 ? b[axis_b] : 1;
    if (da != db && da != 1 && db != 1)
      return invalid_argument(fmt::format("shapes {} and {} do not broadcast (axis {}: {} vs {})", a.str(), b.str(), i, da, db));
    dims[i] = da == 1 ? db : da;
  }
  return Shape::from({dims.data(), static_cast<size_t>(rank)});
}

NodeId Graph::fail(std::string message) {
  if (status_.ok()) status_ = invalid_argument(fmt::format("graph node {}: {}", nodes_.size(), message));
  return kInvalidNode;
}

bool Graph::valid(std::initializer_list<NodeId> ids) {
  if (!status_.ok()) return false;
  for (NodeId id : ids)
    if (id < 0 || static_cast<size_t>(id) >= nodes_.size()) {
      fail(fmt::format("input node id {} does not exist", id));
      return false;
    }
  return true;
}

bool Graph::expect(NodeId id, std::initializer_list<DType> allowed, std::string_view role, Op op) {
  const DType type = node(id).dtype;
  if (std::find(allowed.begin(), allowed.end(), type) != allowed.end()) return true;
  fail(fmt::format("{}: {} is {}{}, a type this op does not take", op_name(op), role, dtype_name(type),
                   node(id).shape.str()));
  return false;
}

NodeId Graph::append(Node node) {
  nodes_.push_back(std::move(node));
  return static_cast<NodeId>(nodes_.size() - 1);
}

namespace {

Node make_node(Op op, std::vector<NodeId> inputs, const Shape& shape, OpParams params = {}) {
  Node node;
  node.op = op;
  node.inputs = std::move(inputs);
  node.shape = shape;
  node.params = params;
  return node;
}

constexpr std::initializer_list<DType> kActivations = {DType::f32};
constexpr std::initializer_list<DType> kWeights = {DType::f32, DType::f16, DType::bf16};
// Linear layers and embedding tables also take GGUF's block types, read in place.
constexpr std::initializer_list<DType> kStoredWeights = {DType::f32,  DType::f16,  DType::bf16, DType::q8_0,
                                                         DType::q4_0, DType::q4_1, DType::q4_k, DType::q6_k};

}  // namespace

NodeId Graph::input(std::string name, const Shape& shape, DType dtype) {
  if (!status_.ok()) return kInvalidNode;
  Node node = make_node(Op::input, {}, shape);
  node.dtype = dtype;
  node.name = std::move(name);
  const NodeId id = append(std::move(node));
  inputs_.push_back(id);
  return id;
}

NodeId Graph::constant(std::string name, Tensor value) {
  if (!status_.ok()) return kInvalidNode;
  if (!value.defined()) return fail(fmt::format("constant '{}' has no tensor", name));
  Node node = make_node(Op::constant, {}, value.shape());
  node.dtype = value.dtype();
  node.name = std::move(name);
  node.value = std::move(value);
  return append(std::move(node));
}

NodeId Graph::matmul(NodeId a, NodeId b, bool transpose_b) {
  if (!valid({a, b}) || !expect(a, kActivations, "a", Op::matmul) || !expect(b, kWeights, "b", Op::matmul))
    return kInvalidNode;
  const Shape &sa = node(a).shape, &sb = node(b).shape;
  if (sa.rank() < 2 || sb.rank() < 2) return fail(fmt::format("matmul of {} and {}: both need 2+ dims", sa.str(), sb.str()));
  const int64_t k_b = transpose_b ? sb[sb.rank() - 1] : sb[sb.rank() - 2];
  const int64_t n = transpose_b ? sb[sb.rank() - 2] : sb[sb.rank() - 1];
  if (sa[sa.rank() - 1] != k_b)
    return fail(fmt::format("matmul of {} and {}{}: inner dimensions {} and {} differ", sa.str(), sb.str(),
                            transpose_b ? "ᵀ" : "", sa[sa.rank() - 1], k_b));
  if (sb.rank() > 2) {
    bool same_batch = sb.rank() == sa.rank();
    for (int axis = 0; same_batch && axis < sa.rank() - 2; ++axis) same_batch = sa[axis] == sb[axis];
    if (!same_batch)
      return fail(fmt::format("matmul of {} and {}: batch dimensions must match", sa.str(), sb.str()));
  }
  Shape out = sa;
  out[out.rank() - 1] = n;
  OpParams params;
  params.transpose_b = transpose_b;
  return append(make_node(Op::matmul, {a, b}, out, params));
}

NodeId Graph::linear(NodeId x, NodeId weight, NodeId bias, Activation act) {
  if (!valid({x, weight}) || (bias != kInvalidNode && !valid({bias}))) return kInvalidNode;
  if (!expect(x, kActivations, "x", Op::linear) || !expect(weight, kStoredWeights, "weight", Op::linear)) return kInvalidNode;
  const Shape &sx = node(x).shape, &sw = node(weight).shape;
  if (sx.rank() < 1 || sw.rank() != 2 || sx[sx.rank() - 1] != sw[1])
    return fail(fmt::format("linear of x {} and weight {}: weight must be [out, {}]", sx.str(), sw.str(),
                            sx.rank() > 0 ? sx[sx.rank() - 1] : 0));
  if (bias != kInvalidNode) {
    if (!expect(bias, kActivations, "bias", Op::linear)) return kInvalidNode;
    const Shape& sb = node(bias).shape;
    if (sb.elements() != sw[0] || sb[sb.rank() - 1] != sw[0])
      return fail(fmt::format("linear bias {} does not match {} outputs", sb.str(), sw[0]));
  }
  Shape out = sx;
  out[out.rank() - 1] = sw[0];
  OpParams params;
  params.activation = act;
  return append(make_node(Op::linear, {x, weight, bias}, out, params));
}

NodeId Graph::broadcast_binary(Op op, NodeId a, NodeId b) {
  if (!valid({a, b}) || !expect(a, kActivations, "a", op) || !expect(b, kActivations, "b", op)) return kInvalidNode;
  auto shape = broadcast_shapes(node(a).shape, node(b).shape);
  if (!shape) return fail(fmt::format("{}: {}", op_name(op), shape.status().message()));
  return append(make_node(op, {a, b}, shape.value()));
}

NodeId Graph::add(NodeId a, NodeId b) { return broadcast_binary(Op::add, a, b); }
NodeId Graph::sub(NodeId a, NodeId b) { return broadcast_binary(Op::sub, a, b); }
NodeId Graph::mul(NodeId a, NodeId b) { return broadcast_binary(Op::mul, a, b); }
NodeId Graph::div(NodeId a, NodeId b) { return broadcast_binary(Op::div, a, b); }
NodeId Graph::add_relu(NodeId a, NodeId b) { return broadcast_binary(Op::add_relu, a, b); }

NodeId Graph::affine(NodeId x, NodeId scale, NodeId shift) {
  if (!valid({x, scale, shift})) return kInvalidNode;
  for (auto [id, role] : {std::pair{x, "x"}, {scale, "scale"}, {shift, "shift"}})
    if (!expect(id, kActivations, role, Op::affine)) return kInvalidNode;
  auto partial = broadcast_shapes(node(x).shape, node(scale).shape);
  if (!partial) return fail(fmt::format("affine: {}", partial.status().message()));
  auto shape = broadcast_shapes(partial.value(), node(shift).shape);
  if (!shape) return fail(fmt::format("affine: {}", shape.status().message()));
  return append(make_node(Op::affine, {x, scale, shift}, shape.value()));
}

NodeId Graph::scale(NodeId x, float factor) {
  if (!valid({x}) || !expect(x, kActivations, "x", Op::scale)) return kInvalidNode;
  OpParams params;
  params.factor = factor;
  return append(make_node(Op::scale, {x}, node(x).shape, params));
}

NodeId Graph::activation(NodeId x, Activation act) {
  if (!valid({x}) || !expect(x, kActivations, "x", Op::activation)) return kInvalidNode;
  OpParams params;
  params.activation = act;
  return append(make_node(Op::activation, {x}, node(x).shape, params));
}

NodeId Graph::reduction(Op op, NodeId x, int axis) {
  if (!valid({x}) || !expect(x, kActivations, "x", op)) return kInvalidNode;
  Shape shape = node(x).shape;
  const int rank = shape.rank();
  if (axis < -rank || axis >= rank) return fail(fmt::format("{} over axis {} of {}", op_name(op), axis, shape.str()));
  if (axis < 0) axis += rank;
  shape[axis] = 1;
  OpParams params;
  params.axis = axis;
  return append(make_node(op, {x}, shape, params));
}

NodeId Graph::sum(NodeId x, int axis) { return reduction(Op::sum, x, axis); }
NodeId Graph::max(NodeId x, int axis) { return reduction(Op::max, x, axis); }
NodeId Graph::mean(NodeId x, int axis) { return reduction(Op::mean, x, axis); }

NodeId Graph::softmax(NodeId x, float factor, bool causal, int64_t position_offset) {
  if (!valid({x}) || !expect(x, kActivations, "x", Op::softmax)) return kInvalidNode;
  const Shape& shape = node(x).shape;
  if (shape.rank() < 1 || (causal && shape.rank() < 2))
    return fail(fmt::format("softmax of {}: {} dims needed", shape.str(), causal ? 2 : 1));
  if (causal && (position_offset < 0 || position_offset + shape[shape.rank() - 2] > shape[shape.rank() - 1]))
    return fail(fmt::format("causal softmax of {} at offset {}: more query positions than keys", shape.str(),
                            position_offset));
  OpParams params;
  params.factor = factor;
  params.causal = causal;
  params.position_offset = position_offset;
  return append(make_node(Op::softmax, {x}, shape, params));
}

NodeId Graph::rms_norm(NodeId x, NodeId weight, float eps) {
  if (!valid({x}) || (weight != kInvalidNode && !valid({weight})) || !expect(x, kActivations, "x", Op::rms_norm))
    return kInvalidNode;
  const Shape& shape = node(x).shape;
  if (shape.rank() < 1) return fail("rms_norm of a scalar");
  if (weight != kInvalidNode) {
    if (!expect(weight, kActivations, "weight", Op::rms_norm)) return kInvalidNode;
    if (node(weight).shape != Shape{shape[shape.rank() - 1]})
      return fail(fmt::format("rms_norm weight {} for rows of {}", node(weight).shape.str(), shape[shape.rank() - 1]));
  }
  OpParams params;
  params.eps = eps;
  return append(make_node(Op::rms_norm, {x, weight}, shape, params));
}

NodeId Graph::layer_norm(NodeId x, NodeId weight, NodeId bias, float eps) {
  if (!valid({x}) || !expect(x, kActivations, "x", Op::layer_norm)) return kInvalidNode;
  const Shape& shape = node(x).shape;
  if (shape.rank() < 1) return fail("layer_norm of a scalar");
  for (NodeId id : {weight, bias}) {
    if (id == kInvalidNode) continue;
    if (!valid({id}) || !expect(id, kActivations, "weight/bias", Op::layer_norm)) return kInvalidNode;
    if (node(id).shape != Shape{shape[shape.rank() - 1]})
      return fail(fmt::format("layer_norm weight/bias {} for rows of {}", node(id).shape.str(), shape[shape.rank() - 1]));
  }
  OpParams params;
  params.eps = eps;
  return append(make_node(Op::layer_norm, {x, weight, bias}, shape, params));
}

NodeId Graph::rope(NodeId x, RopeStyle style, int64_t rotary_dims, float base, int64_t position_offset) {
  if (!valid({x}) || !expect(x, kActivations, "x", Op::rope)) return kInvalidNode;
  const Shape& shape = node(x).shape;
  if (shape.rank() != 3) return fail(fmt::format("rope of {}: expected [tokens, heads, head_dim]", shape.str()));
  if (rotary_dims == 0) rotary_dims = shape[2];
  if (rotary_dims < 0 || rotary_dims > shape[2] || rotary_dims % 2 != 0)
    return fail(fmt::format("rope rotary_dims {} for head_dim {}: must be even and at most head_dim", rotary_dims, shape[2]));
  if (position_offset < 0 || !(base > 1.0f)) return fail(fmt::format("rope offset {} base {}", position_offset, base));
  OpParams params;
  params.rope_style = style;
  params.rotary_dims = rotary_dims;
  params.rope_base = base;
  params.position_offset = position_offset;
  return append(make_node(Op::rope, {x}, shape, params));
}

NodeId Graph::rope(NodeId x, NodeId positions, RopeStyle style, int64_t rotary_dims, float base,
                   float position_scale) {
  const NodeId rotated = rope(x, style, rotary_dims, base, 0);
  if (!valid({rotated, positions}) || !expect(positions, {DType::i32}, "positions", Op::rope)) return kInvalidNode;
  if (node(positions).shape != Shape{node(x).shape[0]})
    return fail(fmt::format("rope of {} at positions {}: expected one position per token", node(x).shape.str(),
                            node(positions).shape.str()));
  if (!(position_scale > 0.0f) || !std::isfinite(position_scale))
    return fail(fmt::format("rope position scale {}: must be positive", position_scale));
  Node& node = nodes_[static_cast<size_t>(rotated)];
  node.inputs.push_back(positions);
  node.params.rope_position_scale = position_scale;
  return rotated;
}

NodeId Graph::swiglu(NodeId gate, NodeId up) {
  if (!valid({gate, up}) || !expect(gate, kActivations, "gate", Op::swiglu) || !expect(up, kActivations, "up", Op::swiglu))
    return kInvalidNode;
  if (node(gate).shape != node(up).shape)
    return fail(fmt::format("swiglu of gate {} and up {}: shapes differ", node(gate).shape.str(), node(up).shape.str()));
  return append(make_node(Op::swiglu, {gate, up}, node(gate).shape));
}

NodeId Graph::embedding(NodeId table, NodeId ids) {
  if (!valid({table, ids}) || !expect(table, kStoredWeights, "table", Op::embedding) ||
      !expect(ids, {DType::i32}, "ids", Op::embedding))
    return kInvalidNode;
  const Shape &st = node(table).shape, &si = node(ids).shape;
  if (st.rank() != 2 || si.rank() != 1)
    return fail(fmt::format("embedding of table {} by ids {}: expected [rows, cols] and [count]", st.str(), si.str()));
  return append(make_node(Op::embedding, {table, ids}, Shape{si[0], st[1]}));
}

NodeId Graph::attention(NodeId q, NodeId k, NodeId v, float scale, int64_t position_offset) {
  if (!valid({q, k, v}) || !expect(q, kActivations, "q", Op::attention) ||
      !expect(k, {DType::f32, DType::f16}, "k", Op::attention) || !expect(v, {DType::f32, DType::f16}, "v", Op::attention))
    return kInvalidNode;
  const Shape &sq = node(q).shape, &sk = node(k).shape, &sv = node(v).shape;
  if (sq.rank() != 3 || sk.rank() != 3 || sk != sv || node(k).dtype != node(v).dtype || sq[2] != sk[2] ||
      sk[1] == 0 || sq[1] % sk[1] != 0)
    return fail(fmt::format("attention of q {} over k {} and v {}: expected q [tokens, heads, d], k and v "
                            "[length, kv_heads, d] of one type, heads a multiple of kv_heads",
                            sq.str(), sk.str(), sv.str()));
  if (position_offset < 0 || position_offset + sq[0] > sk[0])
    return fail(fmt::format("attention of {} queries at offset {} over a cache of {} rows", sq[0], position_offset, sk[0]));
  OpParams params;
  params.factor = scale;
  params.position_offset = position_offset;
  return append(make_node(Op::attention, {q, k, v}, sq, params));
}

NodeId Graph::cached_attention(NodeId q, NodeId k_new, NodeId v_new, std::span<const CacheSegment> segments,
                               float scale) {
  constexpr Op op = Op::cached_attention;
  static constexpr std::initializer_list<DType> kCacheTypes = {DType::f32, DType::f16, DType::q8_0};
  if (!valid({q, k_new, v_new}) || !expect(q, kActivations, "q", op) || !expect(k_new, kActivations, "k_new", op) ||
      !expect(v_new, kActivations, "v_new", op))
    return kInvalidNode;
  const Shape &sq = node(q).shape, &sk = node(k_new).shape, &sv = node(v_new).shape;
  if (sq.rank() != 3 || sk.rank() != 3 || sk != sv || sk[0] != sq[0] || sq[2] != sk[2] || sk[1] == 0 ||
      sq[1] % sk[1] != 0)
    return fail(fmt::format("cached_attention of q {} with new k {} and v {}: expected q [tokens, heads, d], k and v "
                            "[tokens, kv_heads, d], heads a multiple of kv_heads",
                            sq.str(), sk.str(), sv.str()));
  if (segments.empty()) return fail("cached_attention with no segments");
  std::vector<NodeId> inputs = {q, k_new, v_new};
  OpParams params;
  params.factor = scale;
  int64_t rows = 0;
  for (const CacheSegment& segment : segments) {
    const NodeId k_cache = segment.k_cache, v_cache = segment.v_cache;
    if (!valid({k_cache, v_cache}) || !expect(k_cache, kCacheTypes, "k_cache", op) ||
        !expect(v_cache, kCacheTypes, "v_cache", op))
      return kInvalidNode;
    const Shape &cache_k = node(k_cache).shape, &cache_v = node(v_cache).shape;
    const DType cache_type = node(k_cache).dtype;
    if (cache_k.rank() != 3 || cache_k != cache_v || cache_type != node(v_cache).dtype || cache_k[1] != sk[1] ||
        cache_k[2] != sk[2] || (cache_type == DType::q8_0 && sk[2] % block_elements(DType::q8_0) != 0))
      return fail(fmt::format("cached_attention caches k {} {} and v {} {} for rows of [{}, {}]: expected two "
                              "[capacity, kv_heads, d] caches of one type (q8_0 needs d a multiple of {})",
                              dtype_name(cache_type), cache_k.str(), dtype_name(node(v_cache).dtype), cache_v.str(),
                              sk[1], sk[2], block_elements(DType::q8_0)));
    const AttentionSegment& at = segment.rows;
    if (at.tokens <= 0 || at.position < 0 || at.position + at.tokens > cache_k[0])
      return fail(fmt::format("cached_attention of {} tokens at position {} into a cache of {} rows", at.tokens,
                              at.position, cache_k[0]));
    rows += at.tokens;
    inputs.push_back(k_cache);
    inputs.push_back(v_cache);
    params.segments.push_back(at);
  }
  if (rows != sq[0])
    return fail(fmt::format("cached_attention segments cover {} rows of q's {}", rows, sq[0]));
  return append(make_node(op, std::move(inputs), sq, std::move(params)));
}

Status Graph::move_segments(NodeId id, std::span<const AttentionSegment> rows) {
  if (id < 0 || static_cast<size_t>(id) >= nodes_.size() || nodes_[static_cast<size_t>(id)].op != Op::cached_attention)
    return invalid_argument(fmt::format("move_segments: node {} is not a cached_attention", id));
  Node& attention = nodes_[static_cast<size_t>(id)];
  std::vector<AttentionSegment>& segments = attention.params.segments;
  if (rows.size() != segments.size())
    return invalid_argument(fmt::format("move_segments: node {} has {} segments; {} given", id, segments.size(), rows.size()));
  for (size_t s = 0; s < rows.size(); ++s) {
    const int64_t capacity = node(attention.inputs[3 + 2 * s]).shape[0];
    if (rows[s].tokens != segments[s].tokens || rows[s].position < 0 || rows[s].position + rows[s].tokens > capacity)
      return invalid_argument(fmt::format("move_segments: segment {} of node {} holds {} tokens in a cache of {} rows; "
                                          "asked for {} tokens at position {}",
                                          s, id, segments[s].tokens, capacity, rows[s].tokens, rows[s].position));
  }
  std::copy(rows.begin(), rows.end(), segments.begin());
  return {};
}

NodeId Graph::reshape(NodeId x, const Shape& shape) {
  if (!valid({x}) || !expect(x, kActivations, "x", Op::reshape)) return kInvalidNode;
  if (shape.elements() != node(x).shape.elements())
    return fail(fmt::format("reshape of {} into {}: element counts differ", node(x).shape.str(), shape.str()));
  return append(make_node(Op::reshape, {x}, shape));
}

void Graph::set_name(NodeId id, std::string name) {
  if (valid({id})) nodes_[static_cast<size_t>(id)].name = std::move(name);
}

void Graph::mark_output(NodeId id) {
  if (!valid({id})) return;
  if (std::find(outputs_.begin(), outputs_.end(), id) == outputs_.end()) outputs_.push_back(id);
}

}  // namespace ember
