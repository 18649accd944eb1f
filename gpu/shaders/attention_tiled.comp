#version 450
// Causal grouped-query attention of a segment of many query rows (a prompt), flash style:
// one workgroup per (tile of 16 query rows, head). Each tile of KEYS cache rows passes
// through shared memory once per query tile instead of once per query, and the softmax
// keeps a running maximum and sum per row over the key tiles (as the CPU's tiled kernel
// does), so no score row reaches global memory and no scratch is needed. Query t of the
// segment sits at position + t and attends keys 0 .. position + t; head h reads kv head
// h / (q_heads / kv_heads). attention.comp serves short segments (a decoded token), where
// most of a query tile would be empty. CACHE_TYPE 0 reads an f32 cache, 1 an f16 one.
layout(constant_id = 0) const uint CACHE_TYPE = 0;
layout(constant_id = 1) const uint HEAD_DIM = 128;  // a multiple of 4, at most 256
layout(constant_id = 2) const uint KEYS = 32;       // cache rows per tile: 16 or 32

const uint kThreads = 128u;
const uint kQueries = 16u;
layout(local_size_x = 128) in;

layout(std430, binding = 0) readonly buffer Queries { vec4 q4[]; };
layout(std430, binding = 1) readonly buffer KeyCache { uint k_cache[]; };
layout(std430, binding = 2) readonly buffer ValueCache { uint v_cache[]; };
layout(std430, binding = 3) writeonly buffer Out { vec4 result4[]; };

layout(push_constant) uniform Shape {
  uint first_row;  // the segment's first query row in q and the output
  uint tokens;
  uint q_heads;
  uint kv_heads;
  uint position;   // of the segment's first query
  float scale;
} shape;

const uint kVecs = HEAD_DIM / 4u;
// A key or value row is padded by one vec4, so that the rows 8 neighbouring threads
// read at once start in different shared-memory banks.
const uint kTileStride = kVecs + 1u;
const uint kWeightStride = KEYS + 1u;
shared vec4 query_tile[kQueries * kVecs];
shared vec4 kv_tile[KEYS * kTileStride];      // the keys of a tile, then its values
shared float weights[kQueries * kWeightStride];  // scores, then their exponentials
shared float partial_max[kThreads];
shared float partial_sum[kThreads];
shared float row_max[kQueries];
shared float row_sum[kQueries];
shared float row_rescale[kQueries];

// Scores: thread t takes key t % KEYS for kScoreRows rows, kScoreRowStep apart.
const uint kScoreRowStep = kThreads / KEYS;
const uint kScoreRows = kQueries / kScoreRowStep;
// Softmax: 8 threads per query row, kPartKeys keys each.
const uint kPartKeys = KEYS / 8u;
// Output: thread t takes vec4 t % kVecs of rows t / kVecs + i * kOutRowStep.
const uint kOutRowStep = kThreads / kVecs;
const uint kMostOutRows = 8u;  // kQueries / kOutRowStep rounded up, for HEAD_DIM <= 256
const float kLowest = -3.402823466e38;

vec4 cache_vec4(uint which, uint element) {
  if (CACHE_TYPE == 0u) {
    if (which == 0u)
      return uintBitsToFloat(uvec4(k_cache[element], k_cache[element + 1u], k_cache[element + 2u], k_cache[element + 3u]));
    return uintBitsToFloat(uvec4(v_cache[element], v_cache[element + 1u], v_cache[element + 2u], v_cache[element + 3u]));
  }
  const uint word = element >> 1;
  if (which == 0u) return vec4(unpackHalf2x16(k_cache[word]), unpackHalf2x16(k_cache[word + 1u]));
  return vec4(unpackHalf2x16(v_cache[word]), unpackHalf2x16(v_cache[word + 1u]));
}

void load_kv_tile(uint which, uint key0, uint keys_end, uint kv_head) {
  for (uint index = gl_LocalInvocationIndex; index < KEYS * kVecs; index += kThreads) {
    const uint c = index / kVecs, v = index % kVecs;
    const uint key = key0 + c;
    kv_tile[c * kTileStride + v] =
        key < keys_end ? cache_vec4(which, (key * shape.kv_heads + kv_head) * HEAD_DIM + 4u * v) : vec4(0.0);
  }
}

void main() {
  const uint t = gl_LocalInvocationIndex;
  const uint q0 = gl_WorkGroupID.x * kQueries;
  const uint head = gl_WorkGroupID.y;
  const uint kv_head = head / (shape.q_heads / shape.kv_heads);
  const uint valid_rows = min(kQueries, shape.tokens - q0);
  // Keys this tile's last valid row attends; a row past the segment attends as its last.
  const uint keys_end = shape.position + q0 + valid_rows;

  for (uint index = t; index < kQueries * kVecs; index += kThreads) {
    const uint r = index / kVecs;
    query_tile[index] = r < valid_rows ? q4[((shape.first_row + q0 + r) * shape.q_heads + head) * kVecs + index % kVecs]
                                       : vec4(0.0);
  }
  if (t < kQueries) {
    row_max[t] = kLowest;
    row_sum[t] = 0.0;
  }

  const uint out_vec = t % kVecs;
  const uint out_row0 = t / kVecs;
  vec4 acc[kMostOutRows];
  for (uint i = 0u; i < kMostOutRows; ++i) acc[i] = vec4(0.0);

  const uint score_key = t % KEYS, score_row0 = t / KEYS;
  const uint soft_row = t / 8u, soft_part = t % 8u;
  const uint soft_limit = shape.position + min(q0 + soft_row, shape.tokens - 1u) + 1u;

  for (uint key0 = 0u; key0 < keys_end; key0 += KEYS) {
    load_kv_tile(0u, key0, keys_end, kv_head);
    barrier();

    float dots[kScoreRows];
    for (uint j = 0u; j < kScoreRows; ++j) dots[j] = 0.0;
    for (uint v = 0u; v < kVecs; ++v) {
      const vec4 key = kv_tile[score_key * kTileStride + v];
      for (uint j = 0u; j < kScoreRows; ++j) dots[j] += dot(query_tile[(score_row0 + j * kScoreRowStep) * kVecs + v], key);
    }
    for (uint j = 0u; j < kScoreRows; ++j)
      weights[(score_row0 + j * kScoreRowStep) * kWeightStride + score_key] = dots[j] * shape.scale;
    barrier();

    // The keys are spent: the tile's values take their place while the softmax runs.
    load_kv_tile(1u, key0, keys_end, kv_head);
    float largest = kLowest;
    for (uint i = 0u; i < kPartKeys; ++i) {
      const uint c = soft_part * kPartKeys + i;
      if (key0 + c < soft_limit) largest = max(largest, weights[soft_row * kWeightStride + c]);
    }
    partial_max[t] = largest;
    barrier();

    for (uint p = 0u; p < 8u; ++p) largest = max(largest, partial_max[soft_row * 8u + p]);
    const float running = max(row_max[soft_row], largest);
    float sum = 0.0;
    for (uint i = 0u; i < kPartKeys; ++i) {
      const uint c = soft_part * kPartKeys + i;
      const uint at = soft_row * kWeightStride + c;
      const float weight = key0 + c < soft_limit ? exp(weights[at] - running) : 0.0;
      weights[at] = weight;
      sum += weight;
    }
    partial_sum[t] = sum;
    barrier();

    if (soft_part == 0u) {
      float total = 0.0;
      for (uint p = 0u; p < 8u; ++p) total += partial_sum[soft_row * 8u + p];
      const float rescale = exp(row_max[soft_row] - running);
      row_rescale[soft_row] = rescale;
      row_sum[soft_row] = row_sum[soft_row] * rescale + total;
      row_max[soft_row] = running;
    }
    barrier();

    if (out_row0 < kOutRowStep) {
      for (uint i = 0u; i < kMostOutRows; ++i) {
        const uint r = out_row0 + i * kOutRowStep;
        if (r < kQueries) acc[i] *= row_rescale[r];
      }
      for (uint c = 0u; c < KEYS; ++c) {
        const vec4 value = kv_tile[c * kTileStride + out_vec];
        for (uint i = 0u; i < kMostOutRows; ++i) {
          const uint r = out_row0 + i * kOutRowStep;
          if (r < kQueries) acc[i] += weights[r * kWeightStride + c] * value;
        }
      }
    }
    barrier();
  }

  if (out_row0 >= kOutRowStep) return;
  for (uint i = 0u; i < kMostOutRows; ++i) {
    const uint r = out_row0 + i * kOutRowStep;
    if (r < valid_rows)
      result4[((shape.first_row + q0 + r) * shape.q_heads + head) * kVecs + out_vec] = acc[i] / row_sum[r];
  }
}
