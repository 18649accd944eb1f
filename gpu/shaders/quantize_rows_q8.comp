#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Rounds x to q8_0 blocks once per call, the first step of the block GEMV and GEMM: one
// invocation per block of 32 values writes the block's int8 codes, its scale as a float
// and the sum of its codes (q4_0's weights are nibbles minus 8, so their dot product needs
// it), laid out for the shader that reads them (X_LAYOUT):
//   0, bytes (linear_gemm.comp, and linear_gemv_blocks.comp for q8_0), 10 words: the
//      codes 4 per word, lowest byte first; scale; sum.
//   1, q4_0 pairs (linear_gemv_blocks.comp for q4_0), 20 words: 16 words that each hold
//      two codes as the integer x_b + 65536 x_a, in the order the GEMV pairs them with a
//      weight word's nibbles (there); scale; sum; 2 unused, so that records stay 16-byte
//      aligned for vector loads.
// Without this step every output column would derive the same codes again.
#include "q8_rounding.glsl"

layout(constant_id = 0) const uint X_LAYOUT = 0;

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer InputRows { float x[]; };
layout(std430, binding = 1) writeonly buffer QuantizedRows { uint xq[]; };

layout(push_constant) uniform Shape {
  uint rows;
  uint k;  // a multiple of 32
} shape;

void main() {
  // The blocks may outnumber one dispatch dimension, so the grid is two-dimensional.
  const uint block = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 64u + gl_LocalInvocationID.x;
  if (block >= shape.rows * (shape.k / 32u)) return;
  const uint first = block * 32u;
  float amax = 0.0;
  for (uint e = 0u; e < 32u; ++e) amax = max(amax, abs(x[first + e]));
  const float inverse = x_inverse_scale(amax);
  int codes[32];
  int code_sum = 0;
  [[unroll]] for (uint e = 0u; e < 32u; ++e) {
    codes[e] = int(round_half_away(x[first + e] * inverse));
    code_sum += codes[e];
  }
  const uint words = X_LAYOUT == 0u ? 10u : 20u;
  const uint record = words * block;
  if (X_LAYOUT == 0u) {
    [[unroll]] for (uint word = 0u; word < 8u; ++word) {
      uint packed = 0u;
      [[unroll]] for (uint e = 0u; e < 4u; ++e) packed |= uint(codes[4u * word + e] & 0xff) << (8u * e);
      xq[record + word] = packed;
    }
  } else {
    // Word 4j + t pairs with weight bytes 4j .. 4j+3: t = 0 their low nibbles of bytes 0
    // and 2 (weights 4j, 4j+2), t = 1 of bytes 1 and 3, t = 2 and 3 the high nibbles
    // (weights 4j+16 ..). The lower-numbered weight's code goes in the high half.
    [[unroll]] for (uint j = 0u; j < 4u; ++j)
      [[unroll]] for (uint t = 0u; t < 4u; ++t) {
        const uint a = 4u * j + (t & 1u) + (t >= 2u ? 16u : 0u);
        xq[record + 4u * j + t] = uint(codes[a + 2u] + 65536 * codes[a]);
      }
    xq[record + 18u] = 0u;
    xq[record + 19u] = 0u;
  }
  const uint tail = X_LAYOUT == 0u ? 8u : 16u;
  xq[record + tail] = floatBitsToUint(f16_round(x_scale_of(amax)));
  xq[record + tail + 1u] = uint(code_sum);
}
