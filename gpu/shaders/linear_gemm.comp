#version 450
#extension GL_GOOGLE_include_directive : require
// Fused linear for many input rows: each workgroup computes a 32 x 32 tile of y, stepping
// through k 32 at a time (one GGUF block per weight row) with the x and decoded W tiles in
// shared memory; each of the 16 x 16 threads owns 2 x 2 outputs. With block weights the
// tiles hold codes, and each tile row's scale sits beside it (linear_common.glsl).
#include "linear_common.glsl"

layout(local_size_x = 16, local_size_y = 16) in;

const uint kTile = 32u;
// One float of padding per row keeps threads reading down a column off one bank.
shared float x_tile[kTile][kTile + 1u];
shared float w_tile[kTile][kTile + 1u];
shared float x_scale[kTile];
shared float x_inverse[kTile];
shared float w_scale[kTile];

void main() {
  const uint tx = gl_LocalInvocationID.x;
  const uint ty = gl_LocalInvocationID.y;
  const uint thread = ty * 16u + tx;
  const uint row0 = gl_WorkGroupID.y * kTile;
  const uint column0 = gl_WorkGroupID.x * kTile;
  // Each thread loads 4 consecutive k of one tile row, for x and for W.
  const uint load_row = thread >> 3;
  const uint load_k = (thread & 7u) * 4u;

  precise float acc[2][2] = float[2][2](float[2](0.0, 0.0), float[2](0.0, 0.0));
  for (uint k0 = 0u; k0 < shape.k; k0 += kTile) {
    const uint r = row0 + load_row;
    for (uint e = 0u; e < 4u; ++e) {
      const uint i = k0 + load_k + e;
      x_tile[load_row][load_k + e] = (r < shape.rows && i < shape.k) ? x[r * shape.k + i] : 0.0;
    }
    const uint column = column0 + load_row;
    if (kBlockWeights) {
      const vec4 codes = column < shape.n ? weight_codes4(column, k0 + load_k) : vec4(0.0);
      for (uint e = 0u; e < 4u; ++e) w_tile[load_row][load_k + e] = codes[e];
      barrier();
      // One thread per tile row finds the row's x scale and the weight row's scale.
      if (thread < kTile) {
        float amax = 0.0;
        for (uint i = 0u; i < kTile; ++i) amax = max(amax, abs(x_tile[thread][i]));
        x_inverse[thread] = x_inverse_scale(amax);
        x_scale[thread] = f16_round(x_scale_of(amax));
        w_scale[thread] = column0 + thread < shape.n ? weight_scale(column0 + thread, k0 / kTile) : 0.0;
      }
      barrier();
      for (uint e = 0u; e < 4u; ++e)
        x_tile[load_row][load_k + e] = round_half_away(x_tile[load_row][load_k + e] * x_inverse[load_row]);
      barrier();
      for (uint a = 0u; a < 2u; ++a)
        for (uint b = 0u; b < 2u; ++b) {
          float codes = 0.0;
          for (uint i = 0u; i < kTile; ++i) codes += x_tile[ty + 16u * a][i] * w_tile[tx + 16u * b][i];
          acc[a][b] = fma(codes, w_scale[tx + 16u * b] * x_scale[ty + 16u * a], acc[a][b]);
        }
    } else {
      const vec4 weights = column < shape.n ? weights4(column, k0 + load_k) : vec4(0.0);
      for (uint e = 0u; e < 4u; ++e) w_tile[load_row][load_k + e] = weights[e];
      barrier();
      for (uint i = 0u; i < kTile; ++i)
        for (uint a = 0u; a < 2u; ++a)
          for (uint b = 0u; b < 2u; ++b) acc[a][b] += x_tile[ty + 16u * a][i] * w_tile[tx + 16u * b][i];
    }
    barrier();
  }
  for (uint a = 0u; a < 2u; ++a)
    for (uint b = 0u; b < 2u; ++b) {
      const uint r = row0 + ty + 16u * a;
      const uint column = column0 + tx + 16u * b;
      if (r < shape.rows && column < shape.n) store_output(r, column, acc[a][b]);
    }
}
