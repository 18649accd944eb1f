// Where x's rounding to q8_0 lies for the block shaders that read it, and storing one
// block of it (quantize_rows_q8.comp describes the layouts). The includer declares the
// rounding as `uint xq[]` and includes q8_rounding.glsl first.
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

// Rounds one block's 32 values in this invocation, as quantize_rows_q8.comp rounds them
// across 32 (the same scale, codes and sum), and stores it in `x_layout`: for a shader that
// has each value of the block at hand already, and so needs no pass of its own.
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
