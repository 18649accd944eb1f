#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// Fused linear for few input rows and f32 or f16 weights: one workgroup per (COLUMNS
// output columns, input row). The threads split the dot product over k in groups of 4
// weights, each reading its 4 values of x once for all the workgroup's columns, and add
// their partial sums through subgroup operations. (linear_gemv_blocks.comp takes q8_0/q4_0.)
#include "linear_common.glsl"

layout(constant_id = 2) const uint COLUMNS = 1;  // output columns per workgroup, 1 to kMaxColumns

const uint kMaxColumns = 8u;
layout(local_size_x = 64) in;

// One sum per (column, subgroup); a subgroup may be as narrow as one invocation.
shared float subgroup_sums[kMaxColumns * 64u];

void main() {
  const uint first_column = shape.first_column + gl_WorkGroupID.x * COLUMNS;
  const uint r = gl_WorkGroupID.y;
  const uint t = gl_LocalInvocationID.x;
  const uint x_row = r * shape.k;
  precise float sums[kMaxColumns];
  [[unroll]] for (uint c = 0u; c < kMaxColumns; ++c) sums[c] = 0.0;
  for (uint i = 4u * t; i < shape.k; i += 4u * 64u) {
    vec4 x_values = vec4(0.0);
    [[unroll]] for (uint e = 0u; e < 4u; ++e)
      if (i + e < shape.k) x_values[e] = x[x_row + i + e];
    [[unroll]] for (uint c = 0u; c < COLUMNS; ++c) {
      if (first_column + c >= shape.n) break;
      const vec4 weights = weights4(first_column + c, i);
      [[unroll]] for (uint e = 0u; e < 4u; ++e) sums[c] += x_values[e] * weights[e];
    }
  }
  // Each subgroup adds its threads' sums, then one thread per column adds the
  // subgroups', in subgroup order: two steps, where halving through shared memory waited
  // at six barriers.
  [[unroll]] for (uint c = 0u; c < COLUMNS; ++c) {
    const float subgroup_sum = subgroupAdd(sums[c]);
    if (subgroupElect()) subgroup_sums[c * 64u + gl_SubgroupID] = subgroup_sum;
  }
  barrier();
  if (t >= COLUMNS || first_column + t >= shape.n) return;
  float total = subgroup_sums[t * 64u];
  for (uint s = 1u; s < gl_NumSubgroups; ++s) total += subgroup_sums[t * 64u + s];
  store_output(r, first_column + t, total);
}
