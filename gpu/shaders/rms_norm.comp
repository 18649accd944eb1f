#version 450
// RMSNorm over the last axis: y = x / sqrt(mean(x^2) + eps) * weight, one workgroup per
// row. The squares are summed per thread, then pairwise across the workgroup, in f32
// (the CPU sums them in f64; the two agree to f32 rounding of the scale).
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Weight { float weight[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Shape {
  uint rows;
  uint cols;
  float eps;
} shape;

shared float partial[256];

void main() {
  const uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (row >= shape.rows) return;
  const uint t = gl_LocalInvocationID.x;
  const uint first = row * shape.cols;
  float sum_squares = 0.0;
  for (uint c = t; c < shape.cols; c += 256u) sum_squares += x[first + c] * x[first + c];
  partial[t] = sum_squares;
  barrier();
  for (uint stride = 128u; stride > 0u; stride >>= 1) {
    if (t < stride) partial[t] += partial[t + stride];
    barrier();
  }
  const float inverse_rms = 1.0 / sqrt(partial[0] / float(shape.cols) + shape.eps);
  for (uint c = t; c < shape.cols; c += 256u) y[first + c] = x[first + c] * inverse_rms * weight[c];
}
