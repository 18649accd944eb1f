// Where x's rounding to q8_0 lies for the block shaders that read it, and rounding x
// into it, a block per invocation or across a workgroup (quantize_rows_q8.comp describes
// the layouts). The includer declares the rounding as `uint xq[]`, includes
// q8_rounding.glsl first, and defines ROUNDING_INVOCATIONS to round across the workgroup.
//   0, records: 10 words per block, the codes 4 per word, then scale and sum.
//   1, q8_0 planes: plane p < 2 holds code words 4p .. 4p+3 of every block as one
//      16-byte vector, then every scale, then every sum.
//   2, q4_0 pair planes: plane p < 4 holds pair words 4p .. 4p+3 of every block, then
//      every scale, then every sum.

const uint kRecords = 0u;
const uint kQ8Planes = 1u;
const uint kQ4PairPlanes = 2u;

// Word `word` of block `block` (of `blocks`): a code word in layouts 0 and 1, a pair
// word in layout 2.
uint rounded_word_index(uint x_layout, uint block, uint blocks, uint word) {
  return x_layout == kRecords ? 10u * block + word : (word / 4u) * 4u * blocks + 4u * block + (word & 3u);
}
uint rounded_scale_index(uint x_layout, uint block, uint blocks) {
  return x_layout == kRecords ? 10u * block + 8u : (x_layout == kQ8Planes ? 8u : 16u) * blocks + block;
}
uint rounded_sum_index(uint x_layout, uint block, uint blocks) {
  return x_layout == kRecords ? 10u * block + 9u : (x_layout == kQ8Planes ? 9u : 17u) * blocks + block;
}

// Pair word 4j + w holds two codes as the integer x_b + 65536 x_a, in the order the GEMV
// pairs them with a weight word's nibbles (linear_gemv_blocks.comp): w = 0 pairs with the
// low nibbles of weight bytes 4j and 4j+2 (weights 4j, 4j+2), w = 1 with those of bytes
// 4j+1 and 4j+3, w = 2 and 3 with the high nibbles (weights 4j+16 ..). This is a, the
// place in its block of the lower-numbered code, which goes in the high half.
uint pair_first_code(uint word) {
  const uint j = word / 4u, w = word & 3u;
  return 4u * j + (w & 1u) + (w >= 2u ? 16u : 0u);
}
uint pair_word(int first, int second) { return uint(second + 65536 * first); }

// Code word w of a block: codes 4w .. 4w+3, lowest byte first.
uint code_word(int c0, int c1, int c2, int c3) {
  return uint(c0 & 0xff) | (uint(c1 & 0xff) << 8) | (uint(c2 & 0xff) << 16) | (uint(c3 & 0xff) << 24);
}

// Rounds one block's 32 values in this invocation, as round_values_together rounds them
// across 32 (the same scale, codes and sum), and stores it in `x_layout`. Which of the two
// a producer takes was measured on the H100 (docs/PERFORMANCE.md, "Eleventh session"):
// a norm's row, 256 invocations to thousands of values, rounds faster a block per
// invocation than in chunks of 256 with a dozen barriers each; swiglu, an invocation per
// value, faster together (one block per invocation left 176 for a 5632-wide row).
void store_rounded_block(uint x_layout, uint block, uint blocks, float values[32]) {
  float magnitude = 0.0;
  [[unroll]] for (uint e = 0u; e < 32u; ++e) magnitude = max(magnitude, abs(values[e]));
  const float scale = x_scale_of(magnitude);
  const float inverse = x_inverse_scale(scale);
  int codes[32];
  int sum = 0;
  [[unroll]] for (uint e = 0u; e < 32u; ++e) {
    codes[e] = int(round_half_away(values[e] * inverse));
    sum += codes[e];
  }
  if (x_layout == kQ4PairPlanes) {
    [[unroll]] for (uint word = 0u; word < 16u; ++word) {
      const uint a = pair_first_code(word);
      xq[rounded_word_index(x_layout, block, blocks, word)] = pair_word(codes[a], codes[a + 2u]);
    }
  } else {
    [[unroll]] for (uint w = 0u; w < 8u; ++w)
      xq[rounded_word_index(x_layout, block, blocks, w)] =
          code_word(codes[4u * w], codes[4u * w + 1u], codes[4u * w + 2u], codes[4u * w + 3u]);
  }
  xq[rounded_scale_index(x_layout, block, blocks)] = floatBitsToUint(f16_round(scale));
  xq[rounded_sum_index(x_layout, block, blocks)] = uint(sum);
}

#ifdef ROUNDING_INVOCATIONS
// Rounding across the workgroup: ROUNDING_INVOCATIONS (the workgroup's size, a multiple of
// 32) invocations, each holding one value, 32 consecutive ones a block.
shared float rounding_magnitudes[ROUNDING_INVOCATIONS];
shared int rounding_codes[ROUNDING_INVOCATIONS];
shared int rounding_sums[ROUNDING_INVOCATIONS];

// Rounds `value` with the other 31 of its block, as the CPU rounds x (quant/q8_0.cpp), and
// stores block `block` (of `blocks`) in `x_layout` where `in_range`. Every invocation of
// the workgroup calls it together (it has barriers); those past the last value pass 0 and
// in_range false.
void round_values_together(uint x_layout, float value, uint block, uint blocks, bool in_range) {
  const uint t = gl_LocalInvocationID.x;
  const uint e = t & 31u;  // the value's place in its block
  const uint first = t - e;
  rounding_magnitudes[t] = abs(value);
  barrier();
  for (uint stride = 16u; stride > 0u; stride >>= 1) {
    if (e < stride) rounding_magnitudes[t] = max(rounding_magnitudes[t], rounding_magnitudes[t + stride]);
    barrier();
  }
  const float scale = x_scale_of(rounding_magnitudes[first]);
  const int code = int(round_half_away(value * x_inverse_scale(scale)));
  rounding_codes[t] = code;
  rounding_sums[t] = code;
  barrier();
  for (uint stride = 16u; stride > 0u; stride >>= 1) {
    if (e < stride) rounding_sums[t] += rounding_sums[t + stride];
    barrier();
  }
  if (in_range) {
    if (e < (x_layout == kQ4PairPlanes ? 16u : 8u)) {
      const uint a = first + pair_first_code(e);
      const uint c = first + 4u * e;
      xq[rounded_word_index(x_layout, block, blocks, e)] =
          x_layout == kQ4PairPlanes
              ? pair_word(rounding_codes[a], rounding_codes[a + 2u])
              : code_word(rounding_codes[c], rounding_codes[c + 1u], rounding_codes[c + 2u], rounding_codes[c + 3u]);
    } else if (e == 16u) {
      xq[rounded_scale_index(x_layout, block, blocks)] = floatBitsToUint(f16_round(scale));
    } else if (e == 17u) {
      xq[rounded_sum_index(x_layout, block, blocks)] = uint(rounding_sums[first]);
    }
  }
  // The shared rows are read above; a next call must not overwrite them before.
  barrier();
}
#endif
