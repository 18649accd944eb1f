#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Fused linear for few input rows and q8_0 or q4_0 weights, on x rounded beforehand by
// quantize_rows_q8.comp: one workgroup per (output column, input row). Each thread takes
// whole blocks, reads a weight block as the few words that cover its 34 or 18 bytes, and
// sums code products in integers, exactly as the CPU's int8 kernels (cpu/dot_blocks32.cpp).
//
// There is no packed 8-bit dot product to call (Debian 12's glslc cannot compile
// GL_EXT_integer_dot_product), so integer instructions, not memory, set the pace, and
// q4_0 takes two products per 32-bit multiply. A weight word masked with 0x000F000F
// holds nibbles a0 (bits 0-3) and a1 (bits 16-19), the integer a0 + 65536 a1; x arrives
// paired as x1 + 65536 x0 (X_LAYOUT 1). Their product modulo 2^32 is
// a0 x1 + 65536 (a0 x0 + a1 x1): the wanted sum in the upper half, a stray term below.
// Over the 8 products of a half block |stray| <= 8 * 15 * 127 < 32768 and the total
// stays inside an int, so (sum + 32768) >> 16 recovers the dot product exactly. (Four
// threads per block, each a quarter of it, measured slower on the H200.)
#define QUANTIZED_X
#include "linear_common.glsl"

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer QuantizedRecords4 { uvec4 xq4[]; };

shared float partial[64];

// The 4 bytes starting 2 bytes into word i: blocks start at even bytes, so a block's codes
// start either on a word or 2 bytes into one.
uint shifted_word(uint words[9], uint i) { return (words[i] >> 16) | (words[i + 1u] << 16); }

int dot4(uint a, uint b) {
  int sum = 0;
  [[unroll]] for (int e = 0; e < 32; e += 8) sum += bitfieldExtract(int(a), e, 8) * bitfieldExtract(int(b), e, 8);
  return sum;
}

void main() {
  const uint column = shape.first_column + gl_WorkGroupID.x;
  const uint r = gl_WorkGroupID.y;
  const uint t = gl_LocalInvocationID.x;
  const uint blocks = shape.k / 32u;
  const uint block_bytes = WEIGHT_TYPE == kQ8_0 ? 34u : 18u;
  const uint word_count = WEIGHT_TYPE == kQ8_0 ? 9u : 5u;
  precise float sum = 0.0;
  for (uint block = t; block < blocks; block += 64u) {
    const uint start = column * shape.row_bytes + block * block_bytes;
    const bool halfway = (start & 2u) != 0u;
    uint words[9];
    [[unroll]] for (uint i = 0u; i < 9u; ++i)
      if (i < word_count) words[i] = w[(start >> 2) + i];
    // The words always cover the block's bytes; the last one may reach past the row but
    // never past the buffer, which ends on a whole word (gpu/device_buffer.h).
    const float weight_scale = unpackHalf2x16(halfway ? words[0] >> 16 : words[0]).x;
    int codes = 0;
    float x_scale;
    if (WEIGHT_TYPE == kQ8_0) {
      // X_LAYOUT 0: 10 words per block, the codes 4 per word, then scale and sum.
      const uint record = 10u * (r * blocks + block);
      [[unroll]] for (uint j = 0u; j < 8u; ++j)
        codes += dot4(xq[record + j], halfway ? words[j + 1u] : shifted_word(words, j));
      x_scale = uintBitsToFloat(xq[record + 8u]);
    } else {
      // X_LAYOUT 1: 5 vectors per block, the 16 code pairs, then scale and sum. Byte j of
      // the 16 holds weight j in its low nibble and weight j + 16 in its high one; nibble
      // c stands for c - 8, so Σ x·(c - 8) = Σ x·c - 8 Σ x.
      const uint record = 5u * (r * blocks + block);
      int low = 0, high = 0;
      [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        const uint nibbles = halfway ? words[j + 1u] : shifted_word(words, j);
        const ivec4 pairs = ivec4(xq4[record + j]);
        low += int(nibbles & 0x000f000fu) * pairs.x + int((nibbles >> 8) & 0x000f000fu) * pairs.y;
        high += int((nibbles >> 4) & 0x000f000fu) * pairs.z + int((nibbles >> 12) & 0x000f000fu) * pairs.w;
      }
      const uvec4 tail = xq4[record + 4u];
      codes = ((low + 32768) >> 16) + ((high + 32768) >> 16) - 8 * int(tail.y);
      x_scale = uintBitsToFloat(tail.x);
    }
    sum = fma(float(codes), weight_scale * x_scale, sum);
  }
  partial[t] = sum;
  barrier();
  for (uint stride = 32u; stride > 0u; stride >>= 1) {
    if (t < stride) partial[t] += partial[t + stride];
    barrier();
  }
  if (t == 0u) store_output(r, column, partial[0]);
}
