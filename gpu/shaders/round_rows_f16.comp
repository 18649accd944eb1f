#version 450
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// Rounds x to f16 once per call, the first step of the cooperative-matrix GEMM
// (linear_gemm_coopmat.comp), which multiplies f16 values: the GEMM's column tiles then
// each read half the bytes, and none converts them again. An invocation takes 8 values
// (k is a multiple of 8): two 16-byte loads, one 16-byte store.
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer InputRows { vec4 x4[]; };
layout(std430, binding = 1) writeonly buffer RoundedRows { uvec4 x8[]; };

layout(push_constant) uniform Shape {
  uint rows;
  uint k;
} shape;

uint rounded_pair(vec2 values) { return packFloat2x16(f16vec2(values)); }

void main() {
  // The vectors may outnumber one dispatch dimension's workgroups, so the grid is two-dimensional.
  const uint index = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 256u + gl_LocalInvocationID.x;
  if (index >= shape.rows * (shape.k / 8u)) return;
  const vec4 low = x4[2u * index];
  const vec4 high = x4[2u * index + 1u];
  x8[index] = uvec4(rounded_pair(low.xy), rounded_pair(low.zw), rounded_pair(high.xy), rounded_pair(high.zw));
}
