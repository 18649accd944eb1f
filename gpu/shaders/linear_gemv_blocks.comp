#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// Fused linear for few input rows and q8_0 or q4_0 weights, on x rounded beforehand by
// quantize_rows_q8.comp: one workgroup per (COLUMNS output columns, input row). Each
// thread takes whole blocks, reads x's block once for all its columns (x, not the
// weights, would otherwise be most of the bytes read: its record is larger than a weight
// block), reads a weight block's codes as one or two 16-byte loads (split layout,
// gpu/block_layout.h) or as the few words that cover its 34 or 18 bytes (the file's),
// and sums code products in integers, exactly as the CPU's int8 kernels
// (cpu/dot_blocks32.cpp).
//
// There is no packed 8-bit dot product to call (Debian 12's glslc cannot compile
// GL_EXT_integer_dot_product), so q4_0 takes two products per 32-bit multiply. A weight
// word masked with 0x000F000F holds nibbles a0 (bits 0-3) and a1 (bits 16-19), the
// integer a0 + 65536 a1; x arrives paired as x1 + 65536 x0 (X_LAYOUT 2). Their product
// modulo 2^32 is a0 x1 + 65536 (a0 x0 + a1 x1): the wanted sum in the upper half, a stray
// term below. Over the 8 products of a half block |stray| <= 8 * 15 * 127 < 32768 and the
// total stays inside an int, so (sum + 32768) >> 16 recovers the dot product exactly.
// (Four threads per block, each a quarter of it, measured slower on the H200.)
#define QUANTIZED_X
#include "linear_common.glsl"

layout(constant_id = 2) const uint COLUMNS = 1;  // output columns per workgroup, 1 to kMaxColumns

const uint kMaxColumns = 8u;
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer QuantizedRecords4 { uvec4 xq4[]; };

// One sum per (column, subgroup); a subgroup may be as narrow as one invocation.
shared float subgroup_sums[kMaxColumns * 64u];

int dot4(uint a, uint b) {
  int sum = 0;
  [[unroll]] for (int e = 0; e < 32; e += 8) sum += bitfieldExtract(int(a), e, 8) * bitfieldExtract(int(b), e, 8);
  return sum;
}

void main() {
  const uint first_column = shape.first_column + gl_WorkGroupID.x * COLUMNS;
  const uint r = gl_WorkGroupID.y;
  const uint t = gl_LocalInvocationID.x;
  const uint blocks = shape.k / 32u;
  const uint x_blocks = shape.rows * blocks;
  precise float sums[kMaxColumns];
  [[unroll]] for (uint c = 0u; c < kMaxColumns; ++c) sums[c] = 0.0;
  for (uint block = t; block < blocks; block += 64u) {
    // x's block, from the planes this weight type reads (X_LAYOUT 1 for q8_0, 2 for q4_0).
    const uint x_block = r * blocks + block;
    uint x_codes[8];
    ivec4 x_pairs[4];
    float x_scale;
    int x_sum = 0;
    if (WEIGHT_TYPE == kQ8_0) {
      [[unroll]] for (uint p = 0u; p < 2u; ++p) {
        const uvec4 four = xq4[p * x_blocks + x_block];
        [[unroll]] for (uint j = 0u; j < 4u; ++j) x_codes[4u * p + j] = four[j];
      }
      x_scale = uintBitsToFloat(xq[8u * x_blocks + x_block]);
    } else {
      [[unroll]] for (uint j = 0u; j < 4u; ++j) x_pairs[j] = ivec4(xq4[j * x_blocks + x_block]);
      x_scale = uintBitsToFloat(xq[16u * x_blocks + x_block]);
      x_sum = int(xq[17u * x_blocks + x_block]);
    }
    [[unroll]] for (uint c = 0u; c < COLUMNS; ++c) {
      const uint column = first_column + c;
      if (column >= shape.n) break;
      const WeightBlock weights = weight_block(column, block);
      int codes = 0;
      if (WEIGHT_TYPE == kQ8_0) {
        [[unroll]] for (uint j = 0u; j < 8u; ++j) codes += dot4(x_codes[j], weights.codes[j]);
      } else {
        // Byte j of the 16 holds weight j in its low nibble and weight j + 16 in its high
        // one; nibble c stands for c - 8, so Σ x·(c - 8) = Σ x·c - 8 Σ x.
        int low = 0, high = 0;
        [[unroll]] for (uint j = 0u; j < 4u; ++j) {
          const uint nibbles = weights.codes[j];
          low += int(nibbles & 0x000f000fu) * x_pairs[j].x + int((nibbles >> 8) & 0x000f000fu) * x_pairs[j].y;
          high += int((nibbles >> 4) & 0x000f000fu) * x_pairs[j].z + int((nibbles >> 12) & 0x000f000fu) * x_pairs[j].w;
        }
        codes = ((low + 32768) >> 16) + ((high + 32768) >> 16) - 8 * x_sum;
      }
      sums[c] = fma(float(codes), weights.scale * x_scale, sums[c]);
    }
  }
  // Each subgroup adds its threads' sums, then one thread per column adds the
  // subgroups', in subgroup order: two steps, where halving through shared memory waited
  // at six barriers.
  [[unroll]] for (uint c = 0u; c < COLUMNS; ++c) {
    const float subgroup_sum = subgroupAdd(sums[c]);
    if (subgroupElect()) subgroup_sums[c * 64u + gl_SubgroupID] = subgroup_sum;
  }
  barrier();
  if (t >= COLUMNS || first_column + t >= shape.n) return;
  float total = subgroup_sums[t * 64u];
  for (uint s = 1u; s < gl_NumSubgroups; ++s) total += subgroup_sums[t * 64u + s];
  store_output(r, first_column + t, total);
}
