#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_NV_cooperative_matrix : require
// Fused linear for many input rows and f16, q8_0 or q4_0 weights on the tensor cores,
// through VK_NV_cooperative_matrix (Debian 12's glslc knows the NV extension, not the KHR
// one): x, and each block weight (its f16 scale times its code), are rounded to f16 as
// they are staged; products accumulate in f32. Each workgroup of 4 subgroups of 32
// computes a TILE_ROWS x 128 tile of y; each subgroup a quarter of it, TILE_ROWS / 2 x 64,
// as TILE_ROWS / 32 x 4 16x16 accumulators. 128 rows multiply the most per fragment
// loaded; fewer rows make more workgroups, for products too small to fill the device. k advances 32 at a time
// through x and W slices in shared memory, the next slice loaded into registers while
// the current one is multiplied; against block weights a step is one block of every
// column. The host sends only k a multiple of 8 here (whole 16-byte loads of both rows;
// 32 for block weights) and a device with 32-wide subgroups and 16x16x16 fp16 -> fp32
// matrices (gpu/linear.cpp).
#include "linear_common.glsl"

layout(constant_id = 2) const uint TILE_ROWS = 128u;  // 128, 64 or 32

const uint kSubgroups = 4u;
const uint kThreads = 32u * kSubgroups;
layout(local_size_x = kThreads) in;

layout(std430, binding = 0) readonly buffer InputRowsVec4 { vec4 x4[]; };

// SPIR-V's Subgroup scope; GL_KHR_memory_scope_semantics would name it, but would also
// switch the module to the Vulkan memory model, a device feature not needed here.
const uint kSubgroupScope = 3u;
const uint kTile = 128u;
const uint kStep = 32u;
const uint kSubColumns = kTile / (kSubgroups / 2u);
const uint kFragmentColumns = kSubColumns / 16u;
const uint kMostFragmentRows = 4u;
const uint kFragmentRows = TILE_ROWS / 32u;
// Rows of the slices are padded by 8 halves so that the 16 rows a matrix load touches
// fall in different shared-memory banks; 80 bytes keeps every row 16-byte aligned.
const uint kStride = kStep + 8u;
shared float16_t x_slice[kTile * kStride];  // x_slice[r * kStride + i] = x[row0 + r][k0 + i], r < TILE_ROWS
shared float16_t w_slice[kTile * kStride];  // the same for weight rows (output columns)
shared float staged[kSubgroups * 256u];     // one 16 x 16 accumulator per subgroup, on its way out

// Each thread carries its share of the TILE_ROWS * 8 vec4s of an x slice, and of the 512
// uvec4s (8 halves each) of an f16 W slice or one of its 128 weight blocks (one or two
// uvec4s of codes and a scale when split, gpu/block_layout.h; else the words covering it).
const uint kMostXLoads = 1024u / kThreads;
const uint kXLoads = TILE_ROWS * 8u / kThreads;
const uint kWLoads = 512u / kThreads;
vec4 x_loads[kMostXLoads];
uvec4 w_loads[kWLoads];
WeightBlock weight;  // the thread's weight block of the step

void load_slices(uint row0, uint column0, uint k0) {
  [[unroll]] for (uint j = 0u; j < kMostXLoads; ++j) {
    if (j >= kXLoads) break;
    const uint index = gl_LocalInvocationIndex + kThreads * j;
    const uint row = row0 + (index >> 3);
    const uint i = k0 + 4u * (index & 7u);
    x_loads[j] = (row < shape.rows && i < shape.k) ? x4[(row * shape.k + i) >> 2] : vec4(0.0);
  }
  if (WEIGHT_TYPE == kF16) {
    [[unroll]] for (uint j = 0u; j < kWLoads; ++j) {
      const uint index = gl_LocalInvocationIndex + kThreads * j;
      const uint column = column0 + (index >> 2);
      const uint i = k0 + 8u * (index & 3u);
      w_loads[j] = (column < shape.n && i < shape.k) ? w4[(column * shape.row_bytes + 2u * i) >> 4] : uvec4(0u);
    }
  } else {
    // A column past n reads zeros.
    const uint column = column0 + gl_LocalInvocationIndex;
    if (column < shape.n) {
      weight = weight_block(column, k0 / 32u);
    } else {
      weight.scale = 0.0;
      [[unroll]] for (uint j = 0u; j < 8u; ++j) weight.codes[j] = 0u;
    }
  }
}

// The thread's weight block as f16 values (scale times code) in its column's row of the slice.
void store_weight_block() {
  const uint at = gl_LocalInvocationIndex * kStride;
  const float16_t scale = float16_t(weight.scale);
  if (WEIGHT_TYPE == kQ8_0) {
    [[unroll]] for (uint j = 0u; j < 8u; ++j) {
      const int codes = int(weight.codes[j]);
      [[unroll]] for (uint e = 0u; e < 4u; ++e)
        w_slice[at + 4u * j + e] = scale * float16_t(bitfieldExtract(codes, int(8u * e), 8));
    }
  } else {
    // Byte b of the 16 holds weight b in its low nibble and weight b + 16 in its high one;
    // nibble c stands for c - 8.
    [[unroll]] for (uint j = 0u; j < 4u; ++j) {
      const uint nibbles = weight.codes[j];
      [[unroll]] for (uint e = 0u; e < 4u; ++e) {
        w_slice[at + 4u * j + e] = scale * float16_t(int(bitfieldExtract(nibbles, int(8u * e), 4)) - 8);
        w_slice[at + 16u + 4u * j + e] = scale * float16_t(int(bitfieldExtract(nibbles, int(8u * e + 4u), 4)) - 8);
      }
    }
  }
}

void store_slices() {
  [[unroll]] for (uint j = 0u; j < kMostXLoads; ++j) {
    if (j >= kXLoads) break;
    const uint index = gl_LocalInvocationIndex + kThreads * j;
    const uint at = (index >> 3) * kStride + 4u * (index & 7u);
    [[unroll]] for (uint e = 0u; e < 4u; ++e) x_slice[at + e] = float16_t(x_loads[j][e]);
  }
  if (WEIGHT_TYPE != kF16) {
    store_weight_block();
    return;
  }
  [[unroll]] for (uint j = 0u; j < kWLoads; ++j) {
    const uint index = gl_LocalInvocationIndex + kThreads * j;
    const uint at = (index >> 2) * kStride + 8u * (index & 3u);
    [[unroll]] for (uint e = 0u; e < 4u; ++e) {
      const f16vec2 pair = unpackFloat2x16(w_loads[j][e]);
      w_slice[at + 2u * e] = pair.x;
      w_slice[at + 2u * e + 1u] = pair.y;
    }
  }
}

void main() {
  const uint row0 = gl_WorkGroupID.y * TILE_ROWS;
  const uint column0 = gl_WorkGroupID.x * kTile;
  const uint subgroup = gl_LocalInvocationIndex >> 5;
  const uint lane = gl_LocalInvocationIndex & 31u;
  // Subgroups as 2 rows of kSubgroups / 2: each TILE_ROWS / 2 rows by kTile / (kSubgroups / 2)
  // columns.
  const uint sub_row = (subgroup / (kSubgroups / 2u)) * (TILE_ROWS / 2u);
  const uint sub_column = (subgroup % (kSubgroups / 2u)) * kSubColumns;

  fcoopmatNV<32, kSubgroupScope, 16, 16> acc[kMostFragmentRows][kFragmentColumns];
  [[unroll]] for (uint i = 0u; i < kMostFragmentRows; ++i)
    [[unroll]] for (uint j = 0u; j < kFragmentColumns; ++j) acc[i][j] = fcoopmatNV<32, kSubgroupScope, 16, 16>(0.0);

  load_slices(row0, column0, 0u);
  store_slices();
  barrier();
  for (uint k0 = 0u; k0 < shape.k; k0 += kStep) {
    const bool more = k0 + kStep < shape.k;
    if (more) load_slices(row0, column0, k0 + kStep);
    [[unroll]] for (uint kk = 0u; kk < kStep; kk += 16u) {
      fcoopmatNV<16, kSubgroupScope, 16, 16> a[kMostFragmentRows];
      fcoopmatNV<16, kSubgroupScope, 16, 16> b[kFragmentColumns];
      [[unroll]] for (uint i = 0u; i < kFragmentRows; ++i)
        coopMatLoadNV(a[i], x_slice, (sub_row + 16u * i) * kStride + kk, kStride, false);
      // B is k x columns; w_slice holds it column by column.
      [[unroll]] for (uint j = 0u; j < kFragmentColumns; ++j)
        coopMatLoadNV(b[j], w_slice, (sub_column + 16u * j) * kStride + kk, kStride, true);
      [[unroll]] for (uint i = 0u; i < kFragmentRows; ++i)
        [[unroll]] for (uint j = 0u; j < kFragmentColumns; ++j) acc[i][j] = coopMatMulAddNV(a[i], b[j], acc[i][j]);
    }
    barrier();
    if (more) {
      store_slices();
      barrier();
    }
  }

  // Out through shared memory, 16 x 16 at a time, so that partial tiles, the bias and
  // the activation are handled per element.
  [[unroll]] for (uint i = 0u; i < kFragmentRows; ++i)
    [[unroll]] for (uint j = 0u; j < kFragmentColumns; ++j) {
      coopMatStoreNV(acc[i][j], staged, subgroup * 256u, 16u, false);
      subgroupMemoryBarrierShared();
      subgroupBarrier();
      [[unroll]] for (uint e = 0u; e < 8u; ++e) {
        const uint element = lane + 32u * e;
        const uint row = row0 + sub_row + 16u * i + (element >> 4);
        const uint column = column0 + sub_column + 16u * j + (element & 15u);
        if (row < shape.rows && column < shape.n) store_output(row, column, staged[subgroup * 256u + element]);
      }
      subgroupBarrier();
    }
}
