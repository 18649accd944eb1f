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
// f32 rounding. A cached key's words are read in bursts of kWordsInFlight, the values'
// kKeysInFlight keys at a time: read one word at a time, each load waited for, a decoded
// token's attention took 15-19 us of the H100's time at 32 keys. CACHE_TYPE 0 reads an
// f32 cache, 1 an f16 one.
layout(constant_id = 0) const uint CACHE_TYPE = 0;
layout(constant_id = 1) const uint ROUND_X = 0;
layout(constant_id = 2) const uint X_LAYOUT = 1;

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

// Word w of new row `token` of the segment (keys: which 0, values: 1), as the cache
// stores it.
uint new_word(uint which, uint token, uint kv_head, uint w) {
  const uint first = ((shape.first_row + token) * shape.kv_heads + kv_head) * shape.head_dim;
  if (CACHE_TYPE == 0u) return floatBitsToUint(which == 0u ? new_keys[first + w] : new_values[first + w]);
  return f16_pair_word(which == 0u ? vec2(new_keys[first + 2u * w], new_keys[first + 2u * w + 1u])
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
  for (uint d = t; d < shape.head_dim; d += kThreads) query[d] = q[q_first + d];
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
