// Rotary position embedding.
#pragma once

#include <cstdint>

namespace ember::cpu {

// normal: rotates adjacent pairs (x[2i], x[2i+1]) — the GGUF/llama.cpp layout for Llama.
// neox:   rotates (x[i], x[i + rotary_dims/2]) — GPT-NeoX / Hugging Face layout.
enum class RopeStyle : uint8_t { normal, neox };

struct RopeParams {
  RopeStyle style = RopeStyle::normal;
  int64_t rotary_dims = 0;  // rotated leading dims of each head (even, ≤ head_dim); rest copied
  float base = 10000.0f;
  int64_t position_offset = 0;
  float position_scale = 1.0f;  // linear rope scaling: positions times 1 / factor
};

// The angle of pair i for token t, as (cos, sin) pairs: cos_sin[2 (t·pairs + i)] and the
// sine after it, pairs = rotary_dims / 2. Computed in double and rounded once, as rope()
// uses them; a device that applies rope takes its table from here.
void rope_angles(int64_t tokens, const int32_t* positions, const RopeParams& params, float* cos_sin);

// x, y: [tokens, heads, head_dim] contiguous; y may alias x. Token t sits at position
// positions[t] when positions is non-null, else position_offset + t. Pair i of a head
// turns by angle position * position_scale * base^(-2i / rotary_dims).
void rope(const float* x, float* y, int64_t tokens, int64_t heads, int64_t head_dim, const int32_t* positions,
          const RopeParams& params);

}  // namespace ember::cpu
