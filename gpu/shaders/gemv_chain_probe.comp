#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// A chain of f16 GEMVs, v[p + 1] = W[p] · v[p], as a decoded token's products depend on
// each other (gpu/gemv_chain_probe.h): either as one dispatch whose workgroups meet at a
// grid barrier (grid_barrier.glsl) between phases, or one phase per dispatch. Each
// workgroup stages the phase's x in shared memory; its subgroups then take rows in turn,
// their invocations a row's 16-byte vectors of 8 weights.
layout(local_size_x = 256) in;

layout(std430, binding = 0) coherent volatile buffer Counter { uint grid_arrivals; };
layout(std430, binding = 1) readonly buffer Weights { uvec4 w8[]; };  // phases n x n row-major matrices
layout(std430, binding = 2) coherent buffer Vectors { float v[]; };   // phases + 1 vectors of n

layout(push_constant) uniform Shape {
  uint n;  // a multiple of 8, at most kMostN
  uint first_phase;
  uint phases;  // in this dispatch
  uint base;    // grid_arrivals before this dispatch
} shape;

const uint kMostN = 4096u;
shared vec4 x4[kMostN / 4u];

#include "grid_barrier.glsl"

void main() {
  const uint n = shape.n;
  const uint vectors = n / 8u;
  const uint subgroups = gl_NumWorkGroups.x * gl_NumSubgroups;
  const uint subgroup = gl_WorkGroupID.x * gl_NumSubgroups + gl_SubgroupID;
  for (uint i = 0u; i < shape.phases; ++i) {
    const uint phase = shape.first_phase + i;
    // The barrier's own first barrier() also keeps x4 from changing under the last phase's rows.
    if (i > 0u) grid_barrier(shape.base, i * gl_NumWorkGroups.x);
    for (uint e = gl_LocalInvocationIndex; e < n / 4u; e += gl_WorkGroupSize.x) {
      const uint at = phase * n + 4u * e;
      x4[e] = vec4(v[at], v[at + 1u], v[at + 2u], v[at + 3u]);
    }
    barrier();
    for (uint row = subgroup; row < n; row += subgroups) {
      const uint first = (phase * n + row) * vectors;
      float sum = 0.0;
      for (uint j = gl_SubgroupInvocationID; j < vectors; j += gl_SubgroupSize) {
        const uvec4 h = w8[first + j];
        sum += dot(vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y)), x4[2u * j]) +
               dot(vec4(unpackHalf2x16(h.z), unpackHalf2x16(h.w)), x4[2u * j + 1u]);
      }
      sum = subgroupAdd(sum);
      if (subgroupElect()) v[(phase + 1u) * n + row] = sum;
    }
  }
}
