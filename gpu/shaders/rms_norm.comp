#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// RMSNorm over the last axis: y = x / sqrt(mean(x^2) + eps) * weight, one workgroup per
// row. The squares are summed per thread, then pairwise across the workgroup, in f32
// (the CPU sums them in f64; the two agree to f32 rounding of the scale).
// ADD_FIRST 1 takes x as x + delta, the residual add before a layer's norm, and stores
// that sum too: one dispatch where the add and the norm were two. The f32 sum is the one
// an add would store, so y is the same either way.
// ROUND_X 1 also stores y rounded to q8_0 in X_LAYOUT (q8_planes.glsl) for the GEMV that
// reads y next, which then needs no rounding pass of its own; cols is then a multiple of
// 32, and an invocation rounds each block of y from a chunk staged in shared memory.
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

// A row of up to kChunk values is loaded at once, kHeld per invocation, x, delta and the
// weights together: read one value at a time, each load waited for before the next, an
// add + norm of 2048 took 9-12 us of the H100's time per dispatch. Wider rows take
// further chunks.
const uint kThreads = 256u;
const uint kHeld = 8u;
const uint kChunk = kThreads * kHeld;

const uint kReduceThreads = kThreads;
#include "workgroup_reduce.glsl"
// A chunk of y, for the invocations that round it a block each.
shared float staged[kChunk];

float x_at(uint i) { return ADD_FIRST == 1u ? x[i] + delta[i] : x[i]; }

void main() {
  const uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (row >= shape.rows) return;
  const uint t = gl_LocalInvocationID.x;
  const uint first = row * shape.cols;
  float held[kHeld];
  float weights[kHeld];
  [[unroll]] for (uint i = 0u; i < kHeld; ++i) {
    const uint c = t + kThreads * i;
    held[i] = c < shape.cols ? x_at(first + c) : 0.0;
    weights[i] = c < shape.cols ? weight[c] : 0.0;
  }
  float sum_squares = 0.0;
  [[unroll]] for (uint i = 0u; i < kHeld; ++i) {
    const uint c = t + kThreads * i;
    if (ADD_FIRST == 1u && c < shape.cols) sum[first + c] = held[i];
    sum_squares += held[i] * held[i];
  }
  for (uint c = t + kChunk; c < shape.cols; c += kThreads) {
    const float value = x_at(first + c);
    if (ADD_FIRST == 1u) sum[first + c] = value;
    sum_squares += value * value;
  }
  const float total_squares = workgroup_sum(sum_squares);
  const float inverse_rms = 1.0 / sqrt(total_squares / float(shape.cols) + shape.eps);
  const uint row_blocks = shape.cols / 32u;
  for (uint chunk = 0u; chunk < shape.cols; chunk += kChunk) {
    float normed[kHeld];
    [[unroll]] for (uint i = 0u; i < kHeld; ++i) {
      const uint c = chunk + t + kThreads * i;
      if (chunk == 0u)
        normed[i] = held[i] * inverse_rms * weights[i];
      else
        normed[i] = c < shape.cols ? x_at(first + c) * inverse_rms * weight[c] : 0.0;
    }
    [[unroll]] for (uint i = 0u; i < kHeld; ++i) {
      const uint c = chunk + t + kThreads * i;
      if (c < shape.cols) y[first + c] = normed[i];
      if (ROUND_X == 1u) staged[t + kThreads * i] = normed[i];
    }
    if (ROUND_X == 0u) continue;
    barrier();
    const uint chunk_blocks = min(kChunk, shape.cols - chunk) / 32u;
    if (t < chunk_blocks) {
      float values[32];
      [[unroll]] for (uint e = 0u; e < 32u; ++e) values[e] = staged[32u * t + e];
      store_rounded_block(X_LAYOUT, row * row_blocks + chunk / 32u + t, shape.rows * row_blocks, values);
    }
    barrier();
  }
}
