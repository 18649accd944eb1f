#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// Causal grouped-query attention of one short segment's queries (a decoded token) over
// its KV cache, storing the segment's own keys and values there as it goes: one
// workgroup per (query row, head); attention_tiled.comp takes prompts, after
// kv_store.comp. Query t of the segment sits at position + t and attends keys 0 ..
// position + t; head h reads kv head h / (q_heads / kv_heads). The first head of each
// group stores the segment's new keys and values (f16 rounded to nearest even, as
// kv_store.comp), and every head reads them from the new rows, rounded the same way, so
// the result is that of storing first: a decoded token saves a dispatch and a barrier
// per layer.
// Three passes over the keys: scores (scaled dot products, into a scratch row of global
// memory) and their maximum, the exponentials and their sum, then the weighted values,
// each thread a cache word (an f32 value or two f16 ones) over a share of the keys. The
// CPU's tiled kernel (cpu/attention.h) keeps a running softmax instead; the two agree to
// f32 rounding. With ROPE_STYLE 1 (adjacent pairs) or 2 (neox) q and the new keys
// arrive before their rotary embedding and are turned here, by the host's angle table as
// rope.comp turns them, and written turned to the rope nodes' outputs too: a decoded
// token saves the rope's dispatch and barrier. A cached key's words are read in bursts of
// kWordsInFlight, the values' kKeysInFlight keys at a time: read one word at a time,
// each load waited for, a decoded token's attention took 15-19 us of the H100's time at
// 32 keys. CACHE_TYPE 0 reads an f32 cache, 1 an f16 one.
layout(constant_id = 0) const uint CACHE_TYPE = 0;
layout(constant_id = 1) const uint ROUND_X = 0;
layout(constant_id = 2) const uint X_LAYOUT = 1;
layout(constant_id = 3) const uint ROPE_STYLE = 0;  // 0: q and keys come turned; 1: adjacent pairs; 2: neox

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Queries { float q[]; };
layout(std430, binding = 1) readonly buffer NewKeys { float new_keys[]; };
layout(std430, binding = 2) readonly buffer NewValues { float new_values[]; };
layout(std430, binding = 3) buffer KeyCache { uint k_cache[]; };
layout(std430, binding = 4) buffer ValueCache { uint v_cache[]; };
layout(std430, binding = 5) writeonly buffer Out { float result[]; };
layout(std430, binding = 6) buffer Scores { float scores[]; };
// Bound but unused unless ROUND_X.
layout(std430, binding = 7) writeonly buffer QuantizedRows { uint xq[]; };
// Bound but unused unless ROPE_STYLE: (cos, sin) per [row][pair], and where q and the new
// keys go turned.
layout(std430, binding = 8) readonly buffer Angles { vec2 cos_sin[]; };
layout(std430, binding = 9) writeonly buffer TurnedQueries { float turned_q[]; };
layout(std430, binding = 10) writeonly buffer TurnedKeys { float turned_keys[]; };

#include "q8_rounding.glsl"
#include "q8_planes.glsl"

layout(push_constant) uniform Shape {
  uint first_row;  // the segment's first query row in q, the new rows and the output
  uint tokens;
  uint q_heads;
  uint kv_heads;
  uint head_dim;   // at most kMaxHeadDim, even
  uint position;   // of the segment's first query
  float scale;
  uint stride;     // scratch scores per (segment row, head): at least position + tokens
  uint pairs;      // rotary pairs per head (ROPE_STYLE): at most head_dim / 2
} shape;

const uint kThreads = 256u;
const uint kReduceThreads = kThreads;
const uint kMaxHeadDim = 256u;
const uint kWordsInFlight = 64u;
const uint kKeysInFlight = 16u;
shared float query[kMaxHeadDim];
shared vec2 partial_words[kThreads];
#include "workgroup_reduce.glsl"

// Cache words per key or value row of one kv head.
uint row_words() { return CACHE_TYPE == 0u ? shape.head_dim : shape.head_dim / 2u; }
// The values of a cache word: (value, 0) in an f32 cache, both halves in an f16 one.
vec2 word_values(uint word) { return CACHE_TYPE == 0u ? vec2(uintBitsToFloat(word), 0.0) : unpackHalf2x16(word); }

// Element d of a head's row, with `partner` the other member of its rotary pair, turned
// by row `row`'s angles; as rope.comp computes it. Elements past the pairs stay.
float turned(float value, float partner, uint row, uint d) {
  if (ROPE_STYLE == 0u || d >= 2u * shape.pairs) return value;
  const bool second = ROPE_STYLE == 1u ? (d & 1u) == 1u : d >= shape.pairs;
  const vec2 turn = cos_sin[row * shape.pairs + (ROPE_STYLE == 1u ? d >> 1 : d % shape.pairs)];
  return second ? partner * turn.y + value * turn.x : value * turn.x - partner * turn.y;
}
// Where element d's rotary partner lies in its head (d itself past the pairs).
uint partner_of(uint d) {
  if (ROPE_STYLE == 0u || d >= 2u * shape.pairs) return d;
  return ROPE_STYLE == 1u ? d ^ 1u : (d >= shape.pairs ? d - shape.pairs : d + shape.pairs);
}
float query_at(uint q_first, uint row, uint d) { return turned(q[q_first + d], q[q_first + partner_of(d)], row, d); }
// Element d of a new key row whose element 0 is at `first`.
float new_key_at(uint first, uint row, uint d) {
  return turned(new_keys[first + d], new_keys[first + partner_of(d)], row, d);
}

// Word w of new row `token` of the segment (keys: which 0, values: 1), as the cache
// stores it.
uint new_word(uint which, uint token, uint kv_head, uint w) {
  const uint row = shape.first_row + token;
  const uint first = (row * shape.kv_heads + kv_head) * shape.head_dim;
  if (CACHE_TYPE == 0u) return floatBitsToUint(which == 0u ? new_key_at(first, row, w) : new_values[first + w]);
  return f16_pair_word(which == 0u ? vec2(new_key_at(first, row, 2u * w), new_key_at(first, row, 2u * w + 1u))
                                   : vec2(new_values[first + 2u * w], new_values[first + 2u * w + 1u]));
}

// query · (the key whose words are `words`, from word `first` of the row on).
float dot_words(uint words[kWordsInFlight], uint first, float dot) {
  [[unroll]] for (uint u = 0u; u < kWordsInFlight; ++u) {
    if (first + u >= row_words()) break;
    const vec2 values = word_values(words[u]);
    if (CACHE_TYPE == 0u) {
      dot += query[first + u] * values.x;
    } else {
      dot += query[2u * (first + u)] * values.x;
      dot += query[2u * (first + u) + 1u] * values.y;
    }
  }
  return dot;
}

void store_new_row(uint token, uint kv_head) {
  const uint target = ((shape.position + token) * shape.kv_heads + kv_head) * row_words();
  for (uint w = gl_LocalInvocationID.x; w < row_words(); w += kThreads) {
    k_cache[target + w] = new_word(0u, token, kv_head, w);
    v_cache[target + w] = new_word(1u, token, kv_head, w);
  }
  if (ROPE_STYLE == 0u) return;
  const uint row = shape.first_row + token;
  const uint first = (row * shape.kv_heads + kv_head) * shape.head_dim;
  for (uint d = gl_LocalInvocationID.x; d < shape.head_dim; d += kThreads) turned_keys[first + d] = new_key_at(first, row, d);
}

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint token = gl_WorkGroupID.x;
  const uint head = gl_WorkGroupID.y;
  const uint row = shape.first_row + token;
  const uint keys = shape.position + token + 1u;
  const uint group = shape.q_heads / shape.kv_heads;
  const uint kv_head = head / group;
  const uint q_first = (row * shape.q_heads + head) * shape.head_dim;
  const uint scores_first = (token * shape.q_heads + head) * shape.stride;
  if (head % group == 0u) store_new_row(token, kv_head);
  for (uint d = t; d < shape.head_dim; d += kThreads) {
    query[d] = query_at(q_first, row, d);
    if (ROPE_STYLE != 0u) turned_q[q_first + d] = query[d];
  }
  barrier();

  // The cached keys, a thread each.
  float largest = -3.402823466e38;
  for (uint j = t; j < shape.position; j += kThreads) {
    const uint first_word = (j * shape.kv_heads + kv_head) * row_words();
    float dot = 0.0;
    for (uint burst = 0u; burst < row_words(); burst += kWordsInFlight) {
      uint words[kWordsInFlight];
      [[unroll]] for (uint u = 0u; u < kWordsInFlight; ++u)
        words[u] = burst + u < row_words() ? k_cache[first_word + burst + u] : 0u;
      dot = dot_words(words, burst, dot);
    }
    const float score = dot * shape.scale;
    scores[scores_first + j] = score;
    largest = max(largest, score);
  }
  // The segment's own keys, the workgroup on each.
  for (uint j = shape.position; j < keys; ++j) {
    float part = 0.0;
    for (uint w = t; w < row_words(); w += kThreads) {
      const vec2 values = word_values(new_word(0u, j - shape.position, kv_head, w));
      part += CACHE_TYPE == 0u ? query[w] * values.x : query[2u * w] * values.x + query[2u * w + 1u] * values.y;
    }
    const float score = workgroup_sum(part) * shape.scale;
    if (t == 0u) scores[scores_first + j] = score;
    largest = max(largest, score);
  }
  memoryBarrierBuffer();
  largest = workgroup_max(largest);

  float sum = 0.0;
  for (uint j = t; j < keys; j += kThreads) {
    const float weight = exp(scores[scores_first + j] - largest);
    scores[scores_first + j] = weight;
    sum += weight;
  }
  sum = workgroup_sum(sum);
  // The weights other threads wrote must be visible before every thread reads them all.
  memoryBarrierBuffer();
  barrier();

  // Thread t sums word t % words over keys t / words, + shares, ...; the shares' sums
  // are then added in order.
  const uint words = row_words();
  const uint shares = kThreads / words;
  const uint share = t / words;
  const uint w = t % words;
  vec2 acc = vec2(0.0);
  if (share < shares) {
    for (uint first_key = share; first_key < shape.position; first_key += shares * kKeysInFlight) {
      float weight[kKeysInFlight];
      uint value[kKeysInFlight];
      [[unroll]] for (uint u = 0u; u < kKeysInFlight; ++u) {
        const uint j = first_key + u * shares;
        weight[u] = j < shape.position ? scores[scores_first + j] : 0.0;
        value[u] = j < shape.position ? v_cache[(j * shape.kv_heads + kv_head) * words + w] : 0u;
      }
      [[unroll]] for (uint u = 0u; u < kKeysInFlight; ++u) acc += weight[u] * word_values(value[u]);
    }
    for (uint j = shape.position + share; j < keys; j += shares)
      acc += scores[scores_first + j] * word_values(new_word(1u, j - shape.position, kv_head, w));
  }
  partial_words[t] = acc;
  barrier();
  if (t < words) {
    vec2 total = partial_words[t];
    for (uint s = 1u; s < shares; ++s) total += partial_words[s * words + t];
    const vec2 value = total / sum;
    const uint d = CACHE_TYPE == 0u ? t : 2u * t;
    result[q_first + d] = value.x;
    if (CACHE_TYPE == 1u) result[q_first + d + 1u] = value.y;
    if (ROUND_X != 0u) {
      query[d] = value.x;
      if (CACHE_TYPE == 1u) query[d + 1u] = value.y;
    }
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
