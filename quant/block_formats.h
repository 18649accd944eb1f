// GGUF's block-quantized formats, laid out byte for byte as ggml writes them, so a block
// read from a .gguf file can be cast to these structs (every field is naturally aligned,
// so no packing pragmas are needed and the sizes below hold on every ABI we build for).
// Half-precision fields are raw IEEE binary16 bits (quant/f16.h converts them).
#pragma once

#include <cstdint>

namespace ember::quant {

inline constexpr int kQK8_0 = 32;
inline constexpr int kQK8_1 = 32;
inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
// The "K" formats share one 256-element super-block.
inline constexpr int kQK_K = 256;
// 6-bit scales and mins of q4_K's eight sub-blocks, packed into 12 bytes.
inline constexpr int kScaleBytesK4 = 12;

// q8_0: 32 weights, x[i] = d * qs[i]. d = amax / 127 stored as f16; qs are the weights
// times 1/d rounded half away from zero, so they lie in [-127, 127].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK8_0];
};

// q8_1: the activations q4_1 weights meet. Codes and d exactly as q8_0's, plus
// s = d * Σ qs (the f32 d, not its f16 rounding, as ggml), so that the min term of a q4_1
// dot product, m * d_a * Σ qs_a, costs one multiply per block pair.
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK8_1];
};

// q4_0: 32 weights as 4-bit codes q in [0, 15], x = d * (q - 8). Byte j holds weight j in
// its low nibble and weight j + 16 in its high nibble (the halves of the block, not
// neighbours). d = m / -8 where m is the signed weight of largest magnitude, so that
// weight lands exactly on code 0 and the other side gets the extra code.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK4_0 / 2];
};

// q4_1: 32 weights, x = d * q + m with q in [0, 15]; d = (max - min) / 15 and m = min, both
// f16. Nibble order as in q4_0: byte j holds weights j (low) and j + 16 (high).
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK4_1 / 2];
};

// q4_K: 256 weights in 8 sub-blocks of 32. Sub-block s has a 6-bit scale sc[s] and a
// 6-bit min mn[s], and x = d * sc[s] * q - dmin * mn[s] with q in [0, 15]. The 12 scale
// bytes: for s < 4, sc[s] = scales[s] & 63 and mn[s] = scales[s + 4] & 63; for s >= 4 the
// low 4 bits are in scales[s + 4] (sc low nibble, mn high nibble) and the top 2 bits in
// the spare top bits of scales[s - 4] (sc) and scales[s] (mn). qs holds 4 groups of 32
// bytes; group g packs sub-block 2g in the low nibbles and sub-block 2g + 1 in the high.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kScaleBytesK4];
  uint8_t qs[kQK_K / 2];
};

// q6_K: 256 weights in 16 sub-blocks of 16, x = d * scales[s] * (q - 32) with 6-bit q and
// signed 8-bit scales. Each half of 128 weights uses 64 bytes of ql and 32 of qh: for
// l < 32, ql[l] holds the low 4 bits of weights l (low nibble) and l + 64 (high nibble),
// ql[l + 32] those of l + 32 and l + 96, and qh[l] the top 2 bits of weights l, l + 32,
// l + 64, l + 96 at bit offsets 0, 2, 4, 6.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};

// q8_K: 256 activations, x = d * qs[i] with d an f32 (not f16: it is an intermediate for
// dot products, never stored in model files) and bsums[g] = Σ qs[16g .. 16g + 15], which
// lets a q4_K dot product subtract its mins without touching the weights again.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

}  // namespace ember::quant
