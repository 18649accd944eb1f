// Causal self-attention of new queries over a key/value cache, grouped-query heads.
#pragma once

#include <cstdint>

#include "cpu/element_type.h"

namespace ember::cpu {

struct AttentionArgs {
  const float* q = nullptr;    // [tokens, q_heads, head_dim]
  const void* k = nullptr;     // [kv_length, kv_heads, head_dim], kv_type
  const void* v = nullptr;     // [kv_length, kv_heads, head_dim], kv_type
  // f32, f16 or q8_0. A q8_0 row of head_dim values (one position, one kv head) is
  // head_dim / 32 consecutive quant::BlockQ8_0 blocks.
  ElementType kv_type = ElementType::f32;
  float* out = nullptr;        // [tokens, q_heads, head_dim]
  int64_t tokens = 0, q_heads = 0, kv_heads = 0, head_dim = 0;
  int64_t kv_length = 0;        // cache rows holding valid keys/values
  int64_t position_offset = 0;  // position of the first query
  float scale = 1.0f;           // usually 1/sqrt(head_dim)
};

// Query t (position position_offset + t) attends keys 0..position_offset + t; query head
// h reads kv head h / (q_heads / kv_heads). Preconditions (the caller checks them):
// q_heads % kv_heads == 0, position_offset + tokens <= kv_length, and head_dim % 32 == 0
// when kv_type is q8_0.
// Tiled (flash attention): tiles of query rows (tokens × the heads sharing a kv head) meet
// blocks of 64 keys, widened to f32 once per tile, with a running softmax in f32, so no
// full score matrix is ever made; tiles run in parallel. A query's result does not depend
// on the tile it was in, so a prompt's rows equal the same rows decoded one at a time, and
// a q8_0 cache gives exactly the f32 path's result over the dequantized cache.
void attention(const AttentionArgs& args);

}  // namespace ember::cpu
