#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Causal grouped-query attention of one segment's queries over its KV cache (after
// kv_store.comp put the segment's own keys and values there): one workgroup per (query
// row, head), for short segments such as a decoded token (attention_tiled.comp takes
// prompts). Query t of the segment sits at position + t and attends keys 0 .. position
// + t; head h reads kv head h / (q_heads / kv_heads). Three passes over the keys: scores
// (scaled dot products, into a scratch row of global memory) and their maximum, the
// exponentials and their sum, then each thread one output dimension, summing over the
// keys in order. The CPU's tiled kernel (cpu/attention.h) keeps a running softmax
// instead; the two agree to f32 rounding. CACHE_TYPE 0 reads an f32 cache, 1 an f16 one.
// ROUND_X 1 also stores the output rounded to q8_0 in X_LAYOUT (q8_planes.glsl) for the
// GEMV that reads it next (the output projection of a decoded token), which then needs no
// rounding pass of its own: head_dim is then a multiple of 32, and the segment's rows are
// the output's last.
layout(constant_id = 0) const uint CACHE_TYPE = 0;
layout(constant_id = 1) const uint ROUND_X = 0;
layout(constant_id = 2) const uint X_LAYOUT = 1;

layout(local_size_x = 128) in;

layout(std430, binding = 0) readonly buffer Queries { float q[]; };
layout(std430, binding = 1) readonly buffer KeyCache { uint k_cache[]; };
layout(std430, binding = 2) readonly buffer ValueCache { uint v_cache[]; };
layout(std430, binding = 3) writeonly buffer Out { float result[]; };
layout(std430, binding = 4) buffer Scores { float scores[]; };
// Bound but unused unless ROUND_X.
layout(std430, binding = 5) writeonly buffer QuantizedRows { uint xq[]; };

#include "q8_rounding.glsl"
#include "q8_planes.glsl"

layout(push_constant) uniform Shape {
  uint first_row;  // the segment's first query row in q and the output
  uint tokens;
  uint q_heads;
  uint kv_heads;
  uint head_dim;   // at most kMaxHeadDim, even
  uint position;   // of the segment's first query
  float scale;
  uint stride;     // scratch scores per (segment row, head): at least position + tokens
} shape;

const uint kMaxHeadDim = 256u;
shared float query[kMaxHeadDim];
shared float reduction[128];

float cache_value(uint which, uint element) {
  if (CACHE_TYPE == 0u) return uintBitsToFloat(which == 0u ? k_cache[element] : v_cache[element]);
  const vec2 pair = unpackHalf2x16(which == 0u ? k_cache[element >> 1] : v_cache[element >> 1]);
  return (element & 1u) == 0u ? pair.x : pair.y;
}

float reduce(float value, bool take_max) {
  const uint t = gl_LocalInvocationID.x;
  reduction[t] = value;
  barrier();
  for (uint stride = 64u; stride > 0u; stride >>= 1) {
    if (t < stride) reduction[t] = take_max ? max(reduction[t], reduction[t + stride]) : reduction[t] + reduction[t + stride];
    barrier();
  }
  const float total = reduction[0];
  barrier();
  return total;
}

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint token = gl_WorkGroupID.x;
  const uint head = gl_WorkGroupID.y;
  const uint row = shape.first_row + token;
  const uint keys = shape.position + token + 1u;
  const uint kv_head = head / (shape.q_heads / shape.kv_heads);
  const uint q_first = (row * shape.q_heads + head) * shape.head_dim;
  const uint scores_first = (token * shape.q_heads + head) * shape.stride;
  for (uint d = t; d < shape.head_dim; d += 128u) query[d] = q[q_first + d];
  barrier();

  float largest = -3.402823466e38;
  for (uint j = t; j < keys; j += 128u) {
    const uint key_first = (j * shape.kv_heads + kv_head) * shape.head_dim;
    float dot = 0.0;
    for (uint d = 0u; d < shape.head_dim; ++d) dot += query[d] * cache_value(0u, key_first + d);
    const float score = dot * shape.scale;
    scores[scores_first + j] = score;
    largest = max(largest, score);
  }
  largest = reduce(largest, true);

  float sum = 0.0;
  for (uint j = t; j < keys; j += 128u) {
    const float weight = exp(scores[scores_first + j] - largest);
    scores[scores_first + j] = weight;
    sum += weight;
  }
  sum = reduce(sum, false);
  // The weights other threads wrote must be visible before every thread reads them all.
  memoryBarrierBuffer();
  barrier();

  for (uint d = t; d < shape.head_dim; d += 128u) {
    float acc = 0.0;
    for (uint j = 0u; j < keys; ++j)
      acc += scores[scores_first + j] * cache_value(1u, (j * shape.kv_heads + kv_head) * shape.head_dim + d);
    const float value = acc / sum;
    result[q_first + d] = value;
    if (ROUND_X != 0u) query[d] = value;
  }
  if (ROUND_X == 0u) return;
  // The head's output, now in `query`, as whole blocks of 32, an invocation each.
  barrier();
  const uint head_blocks = shape.head_dim / 32u;
  if (t >= head_blocks) return;
  float values[32];
  [[unroll]] for (uint e = 0u; e < 32u; ++e) values[e] = query[32u * t + e];
  store_rounded_block(X_LAYOUT, q_first / 32u + t, (shape.first_row + shape.tokens) * shape.q_heads * head_blocks,
                      values);
}
