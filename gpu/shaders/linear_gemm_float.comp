#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Fused linear for many input rows and f32 or f16 weights: each workgroup computes a
// 128 x 128 tile of y, each of its 16 x 16 threads an 8 x 8 block of it held in registers,
// stepping through k 16 at a time with the x and W slices in shared memory, stored
// k-major as vec4s so that a thread reads its 8 rows and 8 columns in four 16-byte loads
// for 64 multiply-adds. Every loop but the one over k is unrolled, so that the
// accumulators stay in registers. With f32 weights the next step's x and W are loaded
// into registers before this step's multiply-adds and stored after them, so their latency
// hides behind the arithmetic: 4096^3 on an H100 went from 5348-5386 to 5290-5325 us.
// With f16 weights loading ahead ran 4% slower (5303 against 5093 us), so they load at the
// top of the step, which now takes 5035 us. (linear_gemm.comp keeps the q8_0/q4_0
// weights, whose x must be rounded per block of 32 first.)
#include "linear_common.glsl"

layout(local_size_x = 16, local_size_y = 16) in;

const uint kTile = 128u;
const uint kStep = 16u;
shared vec4 x_slice[kStep][kTile / 4u];  // x_slice[i][r / 4][r % 4] = x[row0 + r][k0 + i]
shared vec4 w_slice[kStep][kTile / 4u];  // the same for weight rows (output columns)

// The invocation's 8 consecutive k of one x row and of one weight row, for the next step.
float x_loads[8];
vec4 w_loads[2];

void load_step(uint x_row, uint w_column, uint k) {
  [[unroll]] for (uint e = 0u; e < 8u; ++e)
    x_loads[e] = (x_row < shape.rows && k + e < shape.k) ? x[x_row * shape.k + k + e] : 0.0;
  [[unroll]] for (uint half_step = 0u; half_step < 2u; ++half_step)
    w_loads[half_step] = w_column < shape.n ? weights4(w_column, k + 4u * half_step) : vec4(0.0);
}

void store_step(uint load_line, uint load_k) {
  [[unroll]] for (uint e = 0u; e < 8u; ++e) {
    x_slice[load_k + e][load_line >> 2][load_line & 3u] = x_loads[e];
    w_slice[load_k + e][load_line >> 2][load_line & 3u] = w_loads[e >> 2][e & 3u];
  }
}

void main() {
  const uint tx = gl_LocalInvocationID.x;
  const uint ty = gl_LocalInvocationID.y;
  const uint thread = ty * 16u + tx;
  const uint row0 = gl_WorkGroupID.y * kTile;
  const uint column0 = gl_WorkGroupID.x * kTile;
  // Each thread loads 8 consecutive k of one x row and of one weight row.
  const uint load_line = thread >> 1;
  const uint load_k = (thread & 1u) * 8u;
  const uint x_row = row0 + load_line;
  const uint w_column = column0 + load_line;

  vec4 acc[8][2];
  [[unroll]] for (uint i = 0u; i < 8u; ++i) acc[i][0] = acc[i][1] = vec4(0.0);
  const bool kLoadAhead = WEIGHT_TYPE == kF32;
  if (kLoadAhead) load_step(x_row, w_column, load_k);
  for (uint k0 = 0u; k0 < shape.k; k0 += kStep) {
    if (!kLoadAhead) load_step(x_row, w_column, k0 + load_k);
    store_step(load_line, load_k);
    barrier();
    if (kLoadAhead && k0 + kStep < shape.k) load_step(x_row, w_column, k0 + kStep + load_k);
    [[unroll]] for (uint i = 0u; i < kStep; ++i) {
      // Rows 4ty .. 4ty+3 and 64+4ty .. ; columns 4tx .. 4tx+3 and 64+4tx .. .
      const vec4 a[2] = vec4[2](x_slice[i][ty], x_slice[i][ty + 16u]);
      const vec4 b[2] = vec4[2](w_slice[i][tx], w_slice[i][tx + 16u]);
      [[unroll]] for (uint r = 0u; r < 8u; ++r) {
        const float x_value = a[r >> 2][r & 3u];
        acc[r][0] = fma(vec4(x_value), b[0], acc[r][0]);
        acc[r][1] = fma(vec4(x_value), b[1], acc[r][1]);
      }
    }
    barrier();
  }
  [[unroll]] for (uint r = 0u; r < 8u; ++r) {
    const uint row = row0 + (r >> 2) * 64u + 4u * ty + (r & 3u);
    if (row >= shape.rows) continue;
    [[unroll]] for (uint half_tile = 0u; half_tile < 2u; ++half_tile)
      [[unroll]] for (uint c = 0u; c < 4u; ++c) {
        const uint column = column0 + half_tile * 64u + 4u * tx + c;
        if (column < shape.n) store_output(row, column, acc[r][half_tile][c]);
      }
  }
}
