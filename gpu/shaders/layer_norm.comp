#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// LayerNorm over the last axis, GPT-2's: y = (x - mean) / sqrt(var + eps) * weight + bias,
// one workgroup per row. The variance is that of the centred values, a second pass over
// the row, as the CPU computes it (cpu/norm.cpp): E[x²] - mean² cancels when the mean is
// large next to the spread. Sums are f32 here and f64 on the CPU; the two agree to f32
// rounding.

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Weight { float weight[]; };
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Shape {
  uint rows;
  uint cols;
  float eps;
} shape;

const uint kThreads = 256u;
const uint kReduceThreads = kThreads;
#include "workgroup_reduce.glsl"

void main() {
  const uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (row >= shape.rows) return;
  const uint t = gl_LocalInvocationID.x;
  const uint first = row * shape.cols;
  float sum = 0.0;
  for (uint c = t; c < shape.cols; c += kThreads) sum += x[first + c];
  const float mean = workgroup_sum(sum) / float(shape.cols);
  float sum_squares = 0.0;
  for (uint c = t; c < shape.cols; c += kThreads) {
    const float centred = x[first + c] - mean;
    sum_squares += centred * centred;
  }
  const float inverse_std = 1.0 / sqrt(workgroup_sum(sum_squares) / float(shape.cols) + shape.eps);
  for (uint c = t; c < shape.cols; c += kThreads) y[first + c] = (x[first + c] - mean) * inverse_std * weight[c] + bias[c];
}
