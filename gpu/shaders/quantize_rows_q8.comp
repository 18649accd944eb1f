#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Rounds x to q8_0 blocks once per call, the first step of the block GEMV and GEMM: each
// block of 32 values gets its int8 codes, its scale as a float and the sum of its codes
// (q4_0's weights are nibbles minus 8, so their dot product needs it), laid out for the
// shader that reads them (X_LAYOUT, q8_planes.glsl):
//   0, records (linear_gemm.comp), 10 words per block: the codes 4 per word, lowest byte
//      first; scale; sum.
//   1, q8_0 planes (linear_gemv_blocks.comp for q8_0): the same codes as two planes of B
//      16-byte vectors (codes 0-15, then 16-31), then B scales, then B sums.
//   2, q4_0 pair planes (linear_gemv_blocks.comp for q4_0): four planes of B 16-byte
//      vectors, whose 16 words each hold two codes as the integer x_b + 65536 x_a, in the
//      order the GEMV pairs them with a weight word's nibbles; B scales; B sums.
// In the planes the neighbouring lanes of a GEMV, which take neighbouring blocks, read
// neighbouring vectors: a warp's load is a few whole cache lines, not one line per lane.
// Without this step every output column would derive the same codes again. Where the op
// that writes x rounds it as it goes (rms_norm.comp, attention.comp, elementwise.comp),
// this pass is not recorded at all.
//
// One invocation per value, a workgroup per kBlocks blocks: decoding a token rounds a
// single row, whose few hundred blocks would otherwise be a few hundred invocations each
// working through 32 values in sequence (measured at ~20 us on the H200, most of a GEMV).
#include "q8_rounding.glsl"

layout(constant_id = 0) const uint X_LAYOUT = 0;

const uint kBlocks = 4u;
layout(local_size_x = 128) in;  // 32 * kBlocks

layout(std430, binding = 0) readonly buffer InputRows { float x[]; };
layout(std430, binding = 1) writeonly buffer QuantizedRows { uint xq[]; };
#define ROUNDING_INVOCATIONS 128
#include "q8_planes.glsl"

layout(push_constant) uniform Shape {
  uint rows;
  uint k;  // a multiple of 32
} shape;

void main() {
  // The blocks may outnumber one dispatch dimension, so the grid is two-dimensional.
  const uint group = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint t = gl_LocalInvocationID.x;
  const uint block = group * kBlocks + t / 32u;
  const uint blocks = shape.rows * (shape.k / 32u);
  // Invocations past the last block take part in the barriers, on a zero.
  const float value = block < blocks ? x[block * 32u + (t & 31u)] : 0.0;
  round_values_together(X_LAYOUT, value, block, blocks, block < blocks);
}
