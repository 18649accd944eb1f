// The residual add and RMSNorm after a decoded token's projection (attention's output
// projection, the FFN's down), done by the GEMV that makes it: each workgroup adds the
// residual to the columns it made, and the last workgroup to finish normalises the whole
// sum, and rounds it to q8_0 for the GEMV that reads it next. A separate add + norm
// dispatch took 7 µs of the H200 for 2048 values, as long as a 1 MB GEMV, and the next
// product waited for it (docs/PERFORMANCE.md, "Seventeenth session").
//
// Each workgroup makes its sums visible (memoryBarrierBuffer) before it counts itself
// finished with an atomic add; the one that counts last reads them all through a coherent
// binding, then sets the count back to 0 for the next such dispatch, which a barrier
// separates from this one. One input row and one dispatch (gpu/linear.cpp checks both).
// The includer includes linear_common.glsl first, runs 64 invocations per workgroup, and
// calls norm_after_last_workgroup from uniform control flow.

layout(constant_id = 4) const uint NORM_AFTER = 0;
// The layout (q8_planes.glsl) the next GEMV reads the normed row rounded in, or
// kNotRounded.
layout(constant_id = 5) const uint NORMED_X_LAYOUT = 3;
layout(constant_id = 6) const float NORM_EPS = 0.0;
const uint kNotRounded = 3u;

// Bound but unused unless NORM_AFTER.
layout(std430, binding = 4) readonly buffer Residual { float residual[]; };
layout(std430, binding = 5) readonly buffer NormWeight { float norm_weight[]; };
layout(std430, binding = 6) coherent buffer ResidualSum { float residual_sum[]; };
layout(std430, binding = 7) writeonly buffer Normed { float normed[]; };
layout(std430, binding = 8) writeonly buffer NormedRounded { uint normed_rounded[]; };
layout(std430, binding = 9) coherent buffer FinishedWorkgroups { uint finished_workgroups; };

#define ROUNDED_WORDS normed_rounded
#include "q8_rounding.glsl"
#include "q8_planes.glsl"
const uint kReduceThreads = 64u;
#include "workgroup_reduce.glsl"

shared bool finished_last;

void add_residual(uint column, float value) {
  if (NORM_AFTER == 1u) residual_sum[column] = residual[column] + value;
}

// The same formula as rms_norm.comp: y = sum / sqrt(mean(sum^2) + eps) * weight.
void norm_after_last_workgroup(uint n) {
  if (NORM_AFTER == 0u) return;
  const uint t = gl_LocalInvocationID.x;
  memoryBarrierBuffer();
  barrier();
  if (t == 0u) finished_last = atomicAdd(finished_workgroups, 1u) == gl_NumWorkGroups.x - 1u;
  barrier();
  if (!finished_last) return;
  memoryBarrierBuffer();
  float squares = 0.0;
  for (uint c = t; c < n; c += 64u) squares += residual_sum[c] * residual_sum[c];
  const float inverse_rms = 1.0 / sqrt(workgroup_sum(squares) / float(n) + NORM_EPS);
  for (uint c = t; c < n; c += 64u) normed[c] = residual_sum[c] * inverse_rms * norm_weight[c];
  if (NORMED_X_LAYOUT != kNotRounded) {
    const uint blocks = n / 32u;
    for (uint block = t; block < blocks; block += 64u) {
      float values[32];
      [[unroll]] for (uint e = 0u; e < 32u; ++e)
        values[e] = residual_sum[32u * block + e] * inverse_rms * norm_weight[32u * block + e];
      store_rounded_block(NORMED_X_LAYOUT, block, blocks, values);
    }
  }
  if (t == 0u) finished_workgroups = 0u;
}
