#version 450
#extension GL_GOOGLE_include_directive : require
// Rounds x to q8_0 blocks once per call, the first step of the block GEMV and GEMM: each
// block of 32 values gets its int8 codes, its scale as a float and the sum of its codes
// (q4_0's weights are nibbles minus 8, so their dot product needs it), laid out for the
// shader that reads them (X_LAYOUT). With B blocks in all:
//   0, records (linear_gemm.comp), 10 words per block: the codes 4 per word, lowest byte
//      first; scale; sum.
//   1, q8_0 planes (linear_gemv_blocks.comp for q8_0): the same codes as two planes of B
//      16-byte vectors (codes 0-15, then 16-31), then B scales, then B sums.
//   2, q4_0 pair planes (linear_gemv_blocks.comp for q4_0): four planes of B 16-byte
//      vectors, whose 16 words each hold two codes as the integer x_b + 65536 x_a, in the
//      order the GEMV pairs them with a weight word's nibbles (there); B scales; B sums.
// In the planes the neighbouring lanes of a GEMV, which take neighbouring blocks, read
// neighbouring vectors: a warp's load is a few whole cache lines, not one line per lane.
// Without this step every output column would derive the same codes again.
//
// One invocation per value, a workgroup per kBlocks blocks: decoding a token rounds a
// single row, whose few hundred blocks would otherwise be a few hundred invocations each
// working through 32 values in sequence (measured at ~20 us on the H200, most of a GEMV).
#include "q8_rounding.glsl"

layout(constant_id = 0) const uint X_LAYOUT = 0;

const uint kBlocks = 4u;
layout(local_size_x = 128) in;  // 32 * kBlocks

layout(std430, binding = 0) readonly buffer InputRows { float x[]; };
layout(std430, binding = 1) writeonly buffer QuantizedRows { uint xq[]; };

layout(push_constant) uniform Shape {
  uint rows;
  uint k;  // a multiple of 32
} shape;

shared float magnitudes[128];
shared int codes[128];
shared int code_sums[128];

void main() {
  // The blocks may outnumber one dispatch dimension, so the grid is two-dimensional.
  const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint t = gl_LocalInvocationID.x;
  const uint e = t & 31u;  // the value's place in its block
  const uint first = t - e;
  const uint block = group * kBlocks + t / 32u;
  const uint blocks = shape.rows * (shape.k / 32u);
  // Invocations past the last block take part in the barriers, on a zero.
  const float value = block < blocks ? x[block * 32u + e] : 0.0;
  magnitudes[t] = abs(value);
  barrier();
  for (uint stride = 16u; stride > 0u; stride >>= 1) {
    if (e < stride) magnitudes[t] = max(magnitudes[t], magnitudes[t + stride]);
    barrier();
  }
  const float scale = x_scale_of(magnitudes[first]);
  const int code = int(round_half_away(value * x_inverse_scale(scale)));
  codes[t] = code;
  code_sums[t] = code;
  barrier();
  for (uint stride = 16u; stride > 0u; stride >>= 1) {
    if (e < stride) code_sums[t] += code_sums[t + stride];
    barrier();
  }
  if (block >= blocks) return;
  const uint stored_scale = floatBitsToUint(f16_round(scale));
  const uint code_sum = uint(code_sums[first]);
  if (X_LAYOUT == 2u) {
    // Word 4j + w pairs with weight bytes 4j .. 4j+3: w = 0 their low nibbles of bytes 0
    // and 2 (weights 4j, 4j+2), w = 1 of bytes 1 and 3, w = 2 and 3 the high nibbles
    // (weights 4j+16 ..). The lower-numbered weight's code goes in the high half.
    if (e < 16u) {
      const uint j = e / 4u, w = e & 3u;
      const uint a = first + 4u * j + (w & 1u) + (w >= 2u ? 16u : 0u);
      xq[j * 4u * blocks + 4u * block + w] = uint(codes[a + 2u] + 65536 * codes[a]);
    } else if (e == 16u) {
      xq[16u * blocks + block] = stored_scale;
    } else if (e == 17u) {
      xq[17u * blocks + block] = code_sum;
    }
    return;
  }
  if (e < 8u) {
    uint packed = 0u;
    for (uint b = 0u; b < 4u; ++b) packed |= uint(codes[first + 4u * e + b] & 0xff) << (8u * b);
    // Word e of the codes: in the records at 10 block + e, in the planes at plane e / 4.
    xq[X_LAYOUT == 0u ? 10u * block + e : (e / 4u) * 4u * blocks + 4u * block + (e & 3u)] = packed;
  } else if (e == 8u) {
    xq[X_LAYOUT == 0u ? 10u * block + 8u : 8u * blocks + block] = stored_scale;
  } else if (e == 9u) {
    xq[X_LAYOUT == 0u ? 10u * block + 9u : 9u * blocks + block] = code_sum;
  }
}
