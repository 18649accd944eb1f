#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Fused linear for many input rows and q8_0 or q4_0 weights, on x rounded beforehand by
// quantize_rows_q8.comp: each workgroup computes a 32 x 32 tile of y, stepping through k
// one block (32) at a time with the x and weight codes of the step in shared memory and
// each tile row's scale beside them; each of the 16 x 16 threads owns 2 x 2 outputs. A
// block's code products are whole numbers below 2^24, so their f32 sum is exact, as the
// CPU's integer sum is (cpu/dot_blocks32.cpp).
#define QUANTIZED_X
#include "linear_common.glsl"

layout(local_size_x = 16, local_size_y = 16) in;

const uint kTile = 32u;
// One float of padding per row keeps threads reading down a column off one bank.
shared float x_tile[kTile][kTile + 1u];
shared float w_tile[kTile][kTile + 1u];
shared float x_scale[kTile];
shared float w_scale[kTile];

void main() {
  const uint tx = gl_LocalInvocationID.x;
  const uint ty = gl_LocalInvocationID.y;
  const uint thread = ty * 16u + tx;
  const uint row0 = gl_WorkGroupID.y * kTile;
  const uint column0 = gl_WorkGroupID.x * kTile;
  const uint blocks = shape.k / kTile;
  // Each thread loads 4 consecutive codes of one tile row, of x and of W.
  const uint load_row = thread >> 3;
  const uint load_word = thread & 7u;
  const uint x_row = row0 + load_row;
  const uint column = column0 + load_row;

  precise float acc[2][2] = float[2][2](float[2](0.0, 0.0), float[2](0.0, 0.0));
  for (uint block = 0u; block < blocks; ++block) {
    const int codes = x_row < shape.rows ? int(xq[10u * (x_row * blocks + block) + load_word]) : 0;
    const vec4 weights = column < shape.n ? weight_codes4(column, 32u * block + 4u * load_word) : vec4(0.0);
    for (uint e = 0u; e < 4u; ++e) {
      x_tile[load_row][4u * load_word + e] = float(bitfieldExtract(codes, int(8u * e), 8));
      w_tile[load_row][4u * load_word + e] = weights[e];
    }
    if (thread < kTile) {
      x_scale[thread] = row0 + thread < shape.rows ? uintBitsToFloat(xq[10u * ((row0 + thread) * blocks + block) + 8u]) : 0.0;
    } else if (thread < 2u * kTile) {
      const uint c = thread - kTile;
      w_scale[c] = column0 + c < shape.n ? weight_scale(column0 + c, block) : 0.0;
    }
    barrier();
    for (uint a = 0u; a < 2u; ++a)
      for (uint b = 0u; b < 2u; ++b) {
        float block_sum = 0.0;
        for (uint i = 0u; i < kTile; ++i) block_sum += x_tile[ty + 16u * a][i] * w_tile[tx + 16u * b][i];
        acc[a][b] = fma(block_sum, w_scale[tx + 16u * b] * x_scale[ty + 16u * a], acc[a][b]);
      }
    barrier();
  }
  for (uint a = 0u; a < 2u; ++a)
    for (uint b = 0u; b < 2u; ++b) {
      const uint r = row0 + ty + 16u * a;
      const uint c = column0 + tx + 16u * b;
      if (r < shape.rows && c < shape.n) store_output(r, c, acc[a][b]);
    }
}
