#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// RMSNorm over the last axis: y = x / sqrt(mean(x^2) + eps) * weight, one workgroup per
// row. The squares are summed per thread, then pairwise across the workgroup, in f32
// (the CPU sums them in f64; the two agree to f32 rounding of the scale).
// ADD_FIRST 1 takes x as x + delta, the residual add before a layer's norm, and stores
// that sum too: one dispatch where the add and the norm were two. The f32 sum is the one
// an add would store, so y is the same either way.
// ROUND_X 1 also stores y rounded to q8_0 in X_LAYOUT (q8_planes.glsl) for the GEMV that
// reads y next, which then needs no rounding pass of its own; cols is then a multiple of
// 32, and each invocation takes whole blocks of y.
layout(constant_id = 0) const uint ADD_FIRST = 0;
layout(constant_id = 1) const uint ROUND_X = 0;
layout(constant_id = 2) const uint X_LAYOUT = 1;

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Weight { float weight[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
// Bound but unused unless ADD_FIRST.
layout(std430, binding = 3) readonly buffer Delta { float delta[]; };
layout(std430, binding = 4) writeonly buffer Sum { float sum[]; };
// Bound but unused unless ROUND_X.
layout(std430, binding = 5) writeonly buffer QuantizedRows { uint xq[]; };

#include "q8_rounding.glsl"
#include "q8_planes.glsl"

layout(push_constant) uniform Shape {
  uint rows;
  uint cols;
  float eps;
} shape;

shared float partial[256];

float x_at(uint i) { return ADD_FIRST == 1u ? x[i] + delta[i] : x[i]; }
// Value c of the row starting at `first`, normed.
float normed_at(uint first, uint c, float inverse_rms) { return x_at(first + c) * inverse_rms * weight[c]; }

void main() {
  const uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (row >= shape.rows) return;
  const uint t = gl_LocalInvocationID.x;
  const uint first = row * shape.cols;
  float sum_squares = 0.0;
  for (uint c = t; c < shape.cols; c += 256u) {
    const float value = x_at(first + c);
    if (ADD_FIRST == 1u) sum[first + c] = value;
    sum_squares += value * value;
  }
  partial[t] = sum_squares;
  barrier();
  for (uint stride = 128u; stride > 0u; stride >>= 1) {
    if (t < stride) partial[t] += partial[t + stride];
    barrier();
  }
  const float inverse_rms = 1.0 / sqrt(partial[0] / float(shape.cols) + shape.eps);
  if (ROUND_X == 0u) {
    for (uint c = t; c < shape.cols; c += 256u) y[first + c] = normed_at(first, c, inverse_rms);
    return;
  }
  const uint row_blocks = shape.cols / 32u;
  for (uint b = t; b < row_blocks; b += 256u) {
    float values[32];
    [[unroll]] for (uint e = 0u; e < 32u; ++e) {
      const uint c = 32u * b + e;
      values[e] = normed_at(first, c, inverse_rms);
      y[first + c] = values[e];
    }
    store_rounded_block(X_LAYOUT, row * row_blocks + b, shape.rows * row_blocks, values);
  }
}
