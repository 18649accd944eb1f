#version 450
#extension GL_GOOGLE_include_directive : require
// Fused linear for few input rows and f32 or f16 weights: one workgroup per (output
// column, input row). The threads split the dot product over k in groups of 4 weights
// and add their partial sums in shared memory. (linear_gemv_blocks.comp takes q8_0/q4_0.)
#include "linear_common.glsl"

layout(local_size_x = 64) in;

shared float partial[64];

void main() {
  const uint column = shape.first_column + gl_WorkGroupID.x;
  const uint r = gl_WorkGroupID.y;
  const uint t = gl_LocalInvocationID.x;
  const uint x_row = r * shape.k;
  precise float sum = 0.0;
  for (uint i = 4u * t; i < shape.k; i += 4u * 64u) {
    const vec4 weights = weights4(column, i);
    for (uint e = 0u; e < 4u; ++e)
      if (i + e < shape.k) sum += x[x_row + i + e] * weights[e];
  }
  partial[t] = sum;
  barrier();
  for (uint stride = 32u; stride > 0u; stride >>= 1) {
    if (t < stride) partial[t] += partial[t + stride];
    barrier();
  }
  if (t == 0u) store_output(r, column, partial[0]);
}
