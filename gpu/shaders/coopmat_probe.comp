#version 450
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_NV_cooperative_matrix : require
// A ceiling probe: the rate at which the tensor cores multiply through
// GL_NV_cooperative_matrix 16x16x16 fp16 -> fp32 fragments, the only path Debian 12's
// glslc offers (linear_gemm_coopmat.comp). torch reaches the same cores through other
// instructions, so this is the ceiling the GEMM can be held to. Each subgroup keeps the
// GEMM's 4 x 4 accumulators and multiplies 4 x and 4 W fragments `iterations` times:
// held in registers, or with FROM_SHARED loaded from shared memory before every step as
// the GEMM loads its slices. Every x is 1 and every W 2^-8, so each accumulator gains
// 16 * 2^-8 per step and the sum of a subgroup's 16, which it stores, equals iterations.
layout(local_size_x = 128) in;
layout(constant_id = 0) const uint FROM_SHARED = 0u;
layout(std430, binding = 0) writeonly buffer Sums { float sums[]; };
layout(push_constant) uniform Probe { uint iterations; } probe;

const uint kSubgroupScope = 3u;  // SPIR-V's Subgroup scope (see linear_gemm_coopmat.comp)
const uint kFragments = 4u;
// A fragment row is 16 halves (2 vectors), padded by one vector as in the GEMM.
const uint kStride = 3u;
const uint kFragmentVectors = 16u * kStride;
// Two stages of 4 x and 4 W fragments each; a step reads the stage of its parity.
const uint kStageVectors = 2u * kFragments * kFragmentVectors;
shared uvec4 fragments[2u * kStageVectors];
shared float staged[4u * 256u];  // a fragment of each subgroup on its way out

void main() {
  const uint subgroup = gl_LocalInvocationIndex >> 5;
  const uvec4 ones = uvec4(packHalf2x16(vec2(1.0)));
  const uvec4 weights = uvec4(packHalf2x16(vec2(1.0 / 256.0)));
  for (uint v = gl_LocalInvocationIndex; v < 2u * kStageVectors; v += 128u)
    fragments[v] = (v % kStageVectors) < kFragments * kFragmentVectors ? ones : weights;
  barrier();

  fcoopmatNV<32, kSubgroupScope, 16, 16> acc[kFragments][kFragments];
  [[unroll]] for (uint i = 0u; i < kFragments; ++i)
    [[unroll]] for (uint j = 0u; j < kFragments; ++j) acc[i][j] = fcoopmatNV<32, kSubgroupScope, 16, 16>(0.0);
  fcoopmatNV<16, kSubgroupScope, 16, 16> a[kFragments];
  fcoopmatNV<16, kSubgroupScope, 16, 16> b[kFragments];
  [[unroll]] for (uint i = 0u; i < kFragments; ++i) {
    coopMatLoadNV(a[i], fragments, i * kFragmentVectors, kStride, false);
    coopMatLoadNV(b[i], fragments, (kFragments + i) * kFragmentVectors, kStride, true);
  }
  for (uint step = 0u; step < probe.iterations; ++step) {
    if (FROM_SHARED != 0u) {
      const uint stage = (step & 1u) * kStageVectors;
      [[unroll]] for (uint i = 0u; i < kFragments; ++i) {
        coopMatLoadNV(a[i], fragments, stage + i * kFragmentVectors, kStride, false);
        coopMatLoadNV(b[i], fragments, stage + (kFragments + i) * kFragmentVectors, kStride, true);
      }
    }
    [[unroll]] for (uint i = 0u; i < kFragments; ++i)
      [[unroll]] for (uint j = 0u; j < kFragments; ++j) acc[i][j] = coopMatMulAddNV(a[i], b[j], acc[i][j]);
  }
  // Summed through shared memory, a fragment at a time: glslc 2023.2's optimizer crashes
  // on the sum of two cooperative matrices.
  const uint lane = gl_LocalInvocationIndex & 31u;
  float total[8] = float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
  [[unroll]] for (uint i = 0u; i < kFragments; ++i)
    [[unroll]] for (uint j = 0u; j < kFragments; ++j) {
      coopMatStoreNV(acc[i][j], staged, subgroup * 256u, 16u, false);
      subgroupMemoryBarrierShared();
      subgroupBarrier();
      [[unroll]] for (uint e = 0u; e < 8u; ++e) total[e] += staged[subgroup * 256u + lane + 32u * e];
      subgroupBarrier();
    }
  const uint first = (gl_WorkGroupID.x * 4u + subgroup) * 256u;
  [[unroll]] for (uint e = 0u; e < 8u; ++e) sums[first + lane + 32u * e] = total[e];
}
