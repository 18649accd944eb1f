#version 450
#extension GL_GOOGLE_include_directive : require
// Rounds x to q8_0 blocks once per call, the first step of linear_gemv_blocks.comp: one
// invocation per block of 32 values writes 10 words: the 32 int8 codes (4 per word,
// lowest byte first), the block's scale as a float, and the sum of its codes (q4_0's
// weights are nibbles minus 8, so their dot product needs it). Without this step every
// output column would derive the same codes again.
#include "q8_rounding.glsl"

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
  int code_sum = 0;
  for (uint word = 0u; word < 8u; ++word) {
    uint packed = 0u;
    for (uint e = 0u; e < 4u; ++e) {
      const int code = int(round_half_away(x[first + 4u * word + e] * inverse));
      packed |= uint(code & 0xff) << (8u * e);
      code_sum += code;
    }
    xq[10u * block + word] = packed;
  }
  xq[10u * block + 8u] = floatBitsToUint(f16_round(x_scale_of(amax)));
  xq[10u * block + 9u] = uint(code_sum);
}
