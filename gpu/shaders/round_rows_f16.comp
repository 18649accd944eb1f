#version 450
#extension GL_GOOGLE_include_directive : require
// Rounds x to f16 once per call, the first step of the cooperative-matrix GEMM
// (linear_gemm_coopmat.comp), which multiplies f16 values: the GEMM's column tiles then
// each read half the bytes, and none converts them again. The rounding is the CPU's and
// the f16 KV cache's (f16_pair_word), not the device's own conversion. An invocation
// takes 8 values (k is a multiple of 8): two 16-byte loads, one 16-byte store.
#include "q8_rounding.glsl"

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer InputRows { vec4 x4[]; };
layout(std430, binding = 1) writeonly buffer RoundedRows { uvec4 x8[]; };

layout(push_constant) uniform Shape {
  uint rows;
  uint k;
} shape;

void main() {
  // The vectors may outnumber one dispatch dimension's workgroups, so the grid is two-dimensional.
  const uint index = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 256u + gl_LocalInvocationID.x;
  if (index >= shape.rows * (shape.k / 8u)) return;
  const vec4 low = x4[2u * index];
  const vec4 high = x4[2u * index + 1u];
  x8[index] = uvec4(f16_pair_word(low.xy), f16_pair_word(low.zw), f16_pair_word(high.xy), f16_pair_word(high.zw));
}
