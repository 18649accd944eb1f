// What a decoded token's GEMV does after its product, where the graph would otherwise
// take a dispatch of its own and the next product would wait for it (docs/PERFORMANCE.md,
// "Eighteenth session"): a residual add with its norm over 2048 values took 7 µs of the
// H200, as long as a GEMV of 1 MB.
//
// NORM_AFTER (the o-proj, the FFN's down): each workgroup adds the residual to the columns
// it made, and the last workgroup to finish normalises the whole sum, as rms_norm.comp
// does, and rounds it to q8_0 for the GEMV that reads it next.
// GATED (gate and up, linear_gemv_blocks.comp): each workgroup stores silu(gate) * up for
// its columns, as elementwise.comp's swiglu does, and the last one rounds the whole
// product for the down GEMV.
//
// One invocation of each workgroup stores the workgroup's results and makes them visible
// (memoryBarrierBuffer) before it counts the workgroup finished with an atomic add: the
// writes and the count come from one invocation, as in the usual last-block reduction.
// The workgroup that counts last reads them all through a coherent binding, then sets
// the count back to 0 for the next such dispatch, which a barrier separates from this
// one. One input row and one dispatch (gpu/linear.cpp checks both). The includer includes
// linear_common.glsl first, runs 64 invocations per workgroup with at most
// kMostFinishedColumns columns each, and calls finish_after_product from uniform control
// flow.

layout(constant_id = 4) const uint NORM_AFTER = 0;
// The layout (q8_planes.glsl) the next GEMV reads the normed row or the product rounded
// in, or kNotRounded.
layout(constant_id = 5) const uint ROUNDED_LAYOUT = 3;
layout(constant_id = 6) const float NORM_EPS = 0.0;
layout(constant_id = 7) const uint GATED = 0;
const uint kNotRounded = 3u;

// Bound but unused unless NORM_AFTER or GATED.
layout(std430, binding = 4) readonly buffer Residual { float residual[]; };
layout(std430, binding = 5) readonly buffer NormWeight { float norm_weight[]; };
// The residual sum (NORM_AFTER) or the gated product (GATED).
layout(std430, binding = 6) coherent buffer Finished { float finished_row[]; };
layout(std430, binding = 7) writeonly buffer Normed { float normed[]; };
layout(std430, binding = 8) writeonly buffer RoundedRow { uint rounded_row[]; };
layout(std430, binding = 9) coherent buffer FinishedWorkgroups { uint finished_workgroups; };

#define ROUNDED_WORDS rounded_row
#include "q8_rounding.glsl"
#include "q8_planes.glsl"
const uint kReduceThreads = 64u;
#include "workgroup_reduce.glsl"

const uint kMostFinishedColumns = 8u;
shared float finished_values[kMostFinishedColumns];
shared bool finished_last;

// The workgroup's column `column` (its `index`-th) of the row the last workgroup
// finishes: the residual plus the product's value, or silu(gate) * up.
void keep_finished(uint index, uint column, float value, float up) {
  if (NORM_AFTER == 1u) finished_values[index] = residual[column] + value;
  if (GATED == 1u) finished_values[index] = value / (1.0 + exp(clamp(-value, -87.3, 88.3))) * up;
}

// Stores the workgroup's `columns` kept values from first_column on (those below n), and
// says whether this workgroup finished last; every workgroup calls it once.
bool finished_last_workgroup(uint n, uint first_column, uint columns) {
  barrier();
  if (gl_LocalInvocationID.x == 0u) {
    for (uint c = 0u; c < columns && first_column + c < n; ++c) finished_row[first_column + c] = finished_values[c];
    memoryBarrierBuffer();
    finished_last = atomicAdd(finished_workgroups, 1u) == gl_NumWorkGroups.x - 1u;
  }
  barrier();
  return finished_last;
}

// The finished row normalised by `scale` (NORM_AFTER) into `normed`, and rounded where
// the next GEMV reads it so: one pass over the row, a block per invocation when rounding.
void store_finished_row(uint n, float scale) {
  const uint t = gl_LocalInvocationID.x;
  if (ROUNDED_LAYOUT == kNotRounded) {
    for (uint c = t; c < n; c += 64u) normed[c] = finished_row[c] * scale * norm_weight[c];
    return;
  }
  const uint blocks = n / 32u;
  for (uint block = t; block < blocks; block += 64u) {
    float values[32];
    [[unroll]] for (uint e = 0u; e < 32u; ++e) {
      const uint c = 32u * block + e;
      values[e] = NORM_AFTER == 1u ? finished_row[c] * scale * norm_weight[c] : finished_row[c];
      if (NORM_AFTER == 1u) normed[c] = values[e];
    }
    store_rounded_block(ROUNDED_LAYOUT, block, blocks, values);
  }
}

void finish_after_product(uint n, uint first_column, uint columns) {
  // Without a rounding, the gated product needs no last workgroup: each stores its own.
  if (GATED == 1u && ROUNDED_LAYOUT == kNotRounded && gl_LocalInvocationID.x < columns &&
      first_column + gl_LocalInvocationID.x < n)
    finished_row[first_column + gl_LocalInvocationID.x] = finished_values[gl_LocalInvocationID.x];
  if (NORM_AFTER == 0u && (GATED == 0u || ROUNDED_LAYOUT == kNotRounded)) return;
  if (!finished_last_workgroup(n, first_column, columns)) return;
  memoryBarrierBuffer();
  const uint t = gl_LocalInvocationID.x;
  float inverse_rms = 1.0;
  if (NORM_AFTER == 1u) {
    // The same formula as rms_norm.comp: y = sum / sqrt(mean(sum^2) + eps) * weight.
    float squares = 0.0;
    for (uint c = t; c < n; c += 64u) squares += finished_row[c] * finished_row[c];
    inverse_rms = 1.0 / sqrt(workgroup_sum(squares) / float(n) + NORM_EPS);
  }
  store_finished_row(n, inverse_rms);
  if (t == 0u) finished_workgroups = 0u;
}
