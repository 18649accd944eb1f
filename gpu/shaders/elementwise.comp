#version 450
// One output element per invocation, over a flat range of f32 values: OP (gpu::ElementwiseOp)
// add, out = a + b; swiglu, out = silu(a) * b with silu as cpu/activation.h writes it;
// copy, out = a (a reshape that stays on the device).
layout(constant_id = 0) const uint OP = 0;

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer Out { float result[]; };

layout(push_constant) uniform Shape {
  uint count;
} shape;

void main() {
  // The elements may outnumber one dispatch dimension, so the grid is two-dimensional.
  const uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 256u + gl_LocalInvocationID.x;
  if (i >= shape.count) return;
  if (OP == 0u) {
    result[i] = a[i] + b[i];
  } else if (OP == 1u) {
    const float gate = a[i];
    result[i] = gate / (1.0 + exp(clamp(-gate, -87.3, 88.3))) * b[i];
  } else {
    result[i] = a[i];
  }
}
