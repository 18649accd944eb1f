#version 450
#extension GL_GOOGLE_include_directive : require
// Fused linear for few input rows: one workgroup per (output column, input row). The
// threads split the dot product over k, in groups of 4 float weights or in whole blocks
// of block weights, and add their partial sums in shared memory.
#include "linear_common.glsl"

layout(local_size_x = 64) in;

shared float partial[64];

void main() {
  const uint column = shape.first_column + gl_WorkGroupID.x;
  const uint r = gl_WorkGroupID.y;
  const uint t = gl_LocalInvocationID.x;
  const uint x_row = r * shape.k;
  precise float sum = 0.0;
  if (kBlockWeights) {
    for (uint block = t; block < shape.k / 32u; block += 64u) {
      const uint first = x_row + 32u * block;
      float amax = 0.0;
      for (uint e = 0u; e < 32u; ++e) amax = max(amax, abs(x[first + e]));
      const float inverse = x_inverse_scale(amax);
      float codes = 0.0;
      for (uint i = 0u; i < 32u; i += 4u) {
        const vec4 weights = weight_codes4(column, 32u * block + i);
        for (uint e = 0u; e < 4u; ++e) codes += round_half_away(x[first + i + e] * inverse) * weights[e];
      }
      sum = fma(codes, weight_scale(column, block) * f16_round(x_scale_of(amax)), sum);
    }
  } else {
    for (uint i = 4u * t; i < shape.k; i += 4u * 64u) {
      const vec4 weights = weights4(column, i);
      for (uint e = 0u; e < 4u; ++e)
        if (i + e < shape.k) sum += x[x_row + i + e] * weights[e];
    }
  }
  partial[t] = sum;
  barrier();
  for (uint stride = 32u; stride > 0u; stride >>= 1) {
    if (t < stride) partial[t] += partial[t + stride];
    barrier();
  }
  if (t == 0u) store_output(r, column, partial[0]);
}
