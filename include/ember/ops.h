// The op set: what a graph node can compute. Backends (cpu, gpu) implement these.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace ember {

enum class Op : uint8_t {
  input,       // bound at run time
  constant,    // a tensor held by the graph (weights)
  matmul,      // a[..., m, k] · b[k, n] (or b[n, k] with transpose_b)
  linear,      // act(x · Wᵀ + bias): the fused matmul→add→activation
  add, sub, mul, div,  // NumPy broadcasting
  add_relu,    // relu(a + b): the fused add→relu
  affine,      // x * scale + shift: the fused mul→add
  scale,       // x * factor
  activation,  // act(x)
  sum, max, mean,  // over one axis, kept with size 1
  softmax,     // over the last axis, optional scale and causal mask
  rms_norm, layer_norm,  // over the last axis
  rope,        // rotary embedding of [tokens, heads, head_dim]
  swiglu,      // silu(gate) * up
  embedding,   // row gather: table[ids]
  attention,   // causal grouped-query attention over a KV cache
  reshape,     // the same elements in another shape
  cached_attention,  // stores new keys/values into a KV cache, then attention over it
};

enum class Activation : uint8_t { none, relu, gelu_tanh, gelu_erf, silu };

enum class RopeStyle : uint8_t { normal, neox };

std::string_view op_name(Op op);
std::string_view activation_name(Activation act);

// One sequence's rows in a cached_attention node: `tokens` consecutive query rows at
// positions position..position + tokens - 1 of that sequence's cache.
struct AttentionSegment {
  int64_t tokens = 0;
  int64_t position = 0;
  friend bool operator==(const AttentionSegment&, const AttentionSegment&) = default;
};

// Parameters of a node; each op reads only the fields its builder documents.
struct OpParams {
  bool transpose_b = false;          // matmul
  Activation activation = Activation::none;  // linear, activation
  int axis = 0;                      // sum, max, mean
  float factor = 1.0f;               // scale; softmax and attention score scale
  float eps = 1e-5f;                 // rms_norm, layer_norm
  bool causal = false;               // softmax
  int64_t position_offset = 0;       // softmax mask, rope, attention, cached_attention
  RopeStyle rope_style = RopeStyle::normal;  // rope
  int64_t rotary_dims = 0;           // rope
  float rope_base = 10000.0f;        // rope
  float rope_position_scale = 1.0f;  // rope: positions are multiplied by it (linear scaling)
  std::vector<AttentionSegment> segments;  // cached_attention
};

}  // namespace ember
