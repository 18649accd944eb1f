// Causal self-attention of new queries over a key/value cache, grouped-query heads.
#pragma once

#include <cstdint>

#include "cpu/element_type.h"

namespace ember::cpu {

struct AttentionArgs {
  const float* q = nullptr;    // [tokens, q_heads, head_dim]
  const void* k = nullptr;     // [kv_length, kv_heads, head_dim], kv_type
  const void* v = nullptr;     // [kv_length, kv_heads, head_dim], kv_type
  ElementType kv_type = ElementType::f32;  // f32 or f16
  float* out = nullptr;        // [tokens, q_heads, head_dim]
  int64_t tokens = 0, q_heads = 0, kv_heads = 0, head_dim = 0;
  int64_t kv_length = 0;        // cache rows holding valid keys/values
  int64_t position_offset = 0;  // position of the first query
  float scale = 1.0f;           // usually 1/sqrt(head_dim)
};

// Query t (position position_offset + t) attends keys 0..position_offset + t; query head
// h reads kv head h / (q_heads / kv_heads). Scores and softmax in f32; parallel over
// (token, head) pairs. Preconditions (the caller checks them): q_heads % kv_heads == 0,
// position_offset + tokens <= kv_length.
void attention(const AttentionArgs& args);

}  // namespace ember::cpu
