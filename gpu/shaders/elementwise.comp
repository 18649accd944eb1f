#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// One output element per invocation, over a flat range of f32 values: OP (gpu::ElementwiseOp)
// add, out = a + b; swiglu, out = silu(a) * b with silu as cpu/activation.h writes it;
// copy, out = a (a reshape that stays on the device).
// ROUND_X 1 also stores the result rounded to q8_0 in X_LAYOUT (q8_planes.glsl) for the
// GEMV that reads it next (swiglu before a layer's down projection), which then needs no
// rounding pass of its own; count is then a multiple of 32.
layout(constant_id = 0) const uint OP = 0;
layout(constant_id = 1) const uint ROUND_X = 0;
layout(constant_id = 2) const uint X_LAYOUT = 1;

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer Out { float result[]; };
// Bound but unused unless ROUND_X.
layout(std430, binding = 3) writeonly buffer QuantizedRows { uint xq[]; };

#include "q8_rounding.glsl"
#define ROUNDING_INVOCATIONS 256
#include "q8_planes.glsl"

layout(push_constant) uniform Shape {
  uint count;
} shape;

float element(uint i) {
  if (OP == 0u) return a[i] + b[i];
  if (OP == 1u) {
    const float gate = a[i];
    return gate / (1.0 + exp(clamp(-gate, -87.3, 88.3))) * b[i];
  }
  return a[i];
}

void main() {
  // The elements may outnumber one dispatch dimension, so the grid is two-dimensional.
  const uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 256u + gl_LocalInvocationID.x;
  const bool in_range = i < shape.count;
  const float value = in_range ? element(i) : 0.0;
  if (in_range) result[i] = value;
  // Past the end too: every invocation takes part in the rounding's barriers.
  if (ROUND_X != 0u) round_values_together(X_LAYOUT, value, i / 32u, shape.count / 32u, in_range);
}
