#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_NV_cooperative_matrix : require
// Fused linear for many input rows and f16, q8_0 or q4_0 weights on the tensor cores,
// through VK_NV_cooperative_matrix (Debian 12's glslc knows the NV extension, not the KHR
// one). x comes rounded to f16 (round_rows_f16.comp, once per x rather than once per
// column tile); each block weight is rounded to f16 (its scale times its code) as it is
// staged; products accumulate in f32.
//
// A workgroup computes a TILE_ROWS x TILE_COLUMNS tile of y with TILE_COLUMNS / 32
// subgroups of 32, as 2 rows of TILE_COLUMNS / 64: each subgroup TILE_ROWS / 2 x 64, as
// TILE_ROWS / 32 x 4 16x16 accumulators. Large tiles multiply the most per byte the
// workgroup loads; fewer rows make more workgroups, for products too small to fill the
// device. k advances kStep at a time through x and W slices in shared memory, held as
// 16-byte vectors (8 halves) so that staging one takes one store; the next slice is
// loaded into registers while the current one is multiplied, and with STAGES 2 stored
// into the other half of shared memory, so one barrier per step separates them. Against
// block weights a step is one block of every column, decoded by the column's invocation.
// The host sends only k a multiple of 8 (whole 16-byte rows; 32 for block weights) and a
// device with 32-wide subgroups and 16x16x16 fp16 -> fp32 matrices (gpu/linear.cpp).
#include "linear_common.glsl"

layout(constant_id = 2) const uint TILE_ROWS = 128u;     // 128, 64 or 32
layout(constant_id = 4) const uint TILE_COLUMNS = 128u;  // 128 or 256, with TILE_ROWS >= 64
layout(constant_id = 5) const uint STAGES = 2u;          // slices in shared memory: 1 or 2
layout(local_size_x_id = 4) in;                          // TILE_COLUMNS invocations

// The rows of x as f16, 8 to a vector (k a multiple of 8).
layout(std430, binding = 0) readonly buffer InputRowsF16 { uvec4 x8[]; };

// SPIR-V's Subgroup scope; GL_KHR_memory_scope_semantics would name it, but would also
// switch the module to the Vulkan memory model, a device feature not needed here.
const uint kSubgroupScope = 3u;
const uint kThreads = TILE_COLUMNS;
const uint kStep = 32u;
const uint kVectorsPerRow = kStep / 8u;
const uint kSubColumns = 64u;
const uint kFragmentColumns = kSubColumns / 16u;
const uint kMostFragmentRows = 4u;
const uint kFragmentRows = TILE_ROWS / 32u;
// A slice row is padded by one vector (8 halves): the 8 rows of 16 bytes that each of a
// matrix load's 8 x 8 parts reads then start 80 bytes apart and touch every shared-memory
// bank once.
const uint kStride = kVectorsPerRow + 1u;
const uint kXSlice = TILE_ROWS * kStride;
const uint kWSlice = TILE_COLUMNS * kStride;
// x_slice[s * kXSlice + r * kStride + v]: halves 8v .. 8v+7 of x row row0 + r at k0 + 8v,
// stage s; w_slice the same for weight rows (output columns). After the last step w_slice
// stages the accumulators on their way out, 64 vectors (one 16 x 16 tile) per subgroup.
shared uvec4 x_slice[STAGES * kXSlice];
shared uvec4 w_slice[STAGES * kWSlice];

// Each invocation carries its share of the TILE_ROWS * 4 vectors of an x slice, and of the
// TILE_COLUMNS * 4 of an f16 W slice, or one of its TILE_COLUMNS weight blocks.
const uint kMostXLoads = 4u;
const uint kXLoads = (TILE_ROWS * kVectorsPerRow + kThreads - 1u) / kThreads;
const uint kWLoads = kVectorsPerRow;
uvec4 x_loads[kMostXLoads];
uvec4 w_loads[kWLoads];
WeightBlock weight;  // the invocation's weight block of the step
// Where the invocation's vectors of x and of f16 W lie at k0 = 0 (vector indices, whole
// rows of k a multiple of 8), or ~0u for a row or column past the product's edge: the
// steps then add k0 / 8 and check only k.
const uint kOutside = ~0u;
uint x_first[kMostXLoads];
uint w_first[kWLoads];

void find_vectors(uint row0, uint column0) {
  [[unroll]] for (uint j = 0u; j < kMostXLoads; ++j) {
    const uint index = gl_LocalInvocationIndex + kThreads * j;
    const uint row = row0 + index / kVectorsPerRow;
    x_first[j] = j < kXLoads && index < TILE_ROWS * kVectorsPerRow && row < shape.rows
                     ? row * (shape.k / 8u) + index % kVectorsPerRow
                     : kOutside;
  }
  [[unroll]] for (uint j = 0u; j < kWLoads; ++j) {
    const uint index = gl_LocalInvocationIndex + kThreads * j;
    const uint column = column0 + index / kVectorsPerRow;
    w_first[j] = column < shape.n ? column * (shape.row_bytes / 16u) + index % kVectorsPerRow : kOutside;
  }
}

// Whether the invocation's j-th vector of a row at k0 lies inside the product: its row
// or column does, and the vector starts before k.
bool inside(uint first, uint k0, uint j) {
  return first != kOutside && k0 + 8u * ((gl_LocalInvocationIndex + kThreads * j) % kVectorsPerRow) < shape.k;
}

void load_slices(uint column0, uint k0) {
  [[unroll]] for (uint j = 0u; j < kMostXLoads; ++j) {
    if (j >= kXLoads) break;
    x_loads[j] = inside(x_first[j], k0, j) ? x8[x_first[j] + k0 / 8u] : uvec4(0u);
  }
  if (WEIGHT_TYPE == kF16) {
    [[unroll]] for (uint j = 0u; j < kWLoads; ++j) w_loads[j] = inside(w_first[j], k0, j) ? w4[w_first[j] + k0 / 8u] : uvec4(0u);
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

uint packed_pair(float16_t first, float16_t second) { return packFloat2x16(f16vec2(first, second)); }

// The invocation's weight block as f16 values (scale times code), its column's row of the slice.
void store_weight_block(uint at) {
  const float16_t scale = float16_t(weight.scale);
  if (WEIGHT_TYPE == kQ8_0) {
    // Code word j holds codes 4j .. 4j+3, lowest byte first.
    [[unroll]] for (uint v = 0u; v < 4u; ++v) {
      uvec4 halves;
      [[unroll]] for (uint e = 0u; e < 4u; ++e) {
        const int codes = int(weight.codes[2u * v + e / 2u]);
        const int shift = int(16u * (e & 1u));
        halves[e] = packed_pair(scale * float16_t(bitfieldExtract(codes, shift, 8)),
                                scale * float16_t(bitfieldExtract(codes, shift + 8, 8)));
      }
      w_slice[at + v] = halves;
    }
  } else {
    // Byte b of the 16 holds weight b in its low nibble and weight b + 16 in its high one;
    // nibble c stands for c - 8.
    [[unroll]] for (uint half_block = 0u; half_block < 2u; ++half_block)
      [[unroll]] for (uint v = 0u; v < 2u; ++v) {
        uvec4 halves;
        [[unroll]] for (uint e = 0u; e < 4u; ++e) {
          const uint nibbles = weight.codes[2u * v + e / 2u] >> (4u * half_block);
          const uint shift = 16u * (e & 1u);
          halves[e] = packed_pair(scale * float16_t(int(bitfieldExtract(nibbles, int(shift), 4)) - 8),
                                  scale * float16_t(int(bitfieldExtract(nibbles, int(shift + 8u), 4)) - 8));
        }
        w_slice[at + 2u * half_block + v] = halves;
      }
  }
}

void store_slices(uint stage) {
  [[unroll]] for (uint j = 0u; j < kMostXLoads; ++j) {
    if (j >= kXLoads) break;
    const uint index = gl_LocalInvocationIndex + kThreads * j;
    if (index < TILE_ROWS * kVectorsPerRow)
      x_slice[stage * kXSlice + (index / kVectorsPerRow) * kStride + index % kVectorsPerRow] = x_loads[j];
  }
  if (WEIGHT_TYPE != kF16) {
    store_weight_block(stage * kWSlice + gl_LocalInvocationIndex * kStride);
    return;
  }
  [[unroll]] for (uint j = 0u; j < kWLoads; ++j) {
    const uint index = gl_LocalInvocationIndex + kThreads * j;
    w_slice[stage * kWSlice + (index / kVectorsPerRow) * kStride + index % kVectorsPerRow] = w_loads[j];
  }
}

void main() {
  const uint row0 = gl_WorkGroupID.y * TILE_ROWS;
  const uint column0 = gl_WorkGroupID.x * TILE_COLUMNS;
  const uint subgroup = gl_LocalInvocationIndex >> 5;
  const uint lane = gl_LocalInvocationIndex & 31u;
  const uint subgroup_columns = TILE_COLUMNS / kSubColumns;
  const uint sub_row = (subgroup / subgroup_columns) * (TILE_ROWS / 2u);
  const uint sub_column = (subgroup % subgroup_columns) * kSubColumns;

  fcoopmatNV<32, kSubgroupScope, 16, 16> acc[kMostFragmentRows][kFragmentColumns];
  [[unroll]] for (uint i = 0u; i < kMostFragmentRows; ++i)
    [[unroll]] for (uint j = 0u; j < kFragmentColumns; ++j) acc[i][j] = fcoopmatNV<32, kSubgroupScope, 16, 16>(0.0);

  find_vectors(row0, column0);
  load_slices(column0, 0u);
  store_slices(0u);
  barrier();
  const uint steps = (shape.k + kStep - 1u) / kStep;
  for (uint step = 0u; step < steps; ++step) {
    const uint stage = STAGES == 2u ? step & 1u : 0u;
    const bool more = step + 1u < steps;
    if (more) load_slices(column0, (step + 1u) * kStep);
    [[unroll]] for (uint v = 0u; v < kVectorsPerRow; v += 2u) {
      fcoopmatNV<16, kSubgroupScope, 16, 16> a[kMostFragmentRows];
      fcoopmatNV<16, kSubgroupScope, 16, 16> b[kFragmentColumns];
      [[unroll]] for (uint i = 0u; i < kFragmentRows; ++i)
        coopMatLoadNV(a[i], x_slice, stage * kXSlice + (sub_row + 16u * i) * kStride + v, kStride, false);
      // B is k x columns; w_slice holds it column by column.
      [[unroll]] for (uint j = 0u; j < kFragmentColumns; ++j)
        coopMatLoadNV(b[j], w_slice, stage * kWSlice + (sub_column + 16u * j) * kStride + v, kStride, true);
      [[unroll]] for (uint i = 0u; i < kFragmentRows; ++i)
        [[unroll]] for (uint j = 0u; j < kFragmentColumns; ++j) acc[i][j] = coopMatMulAddNV(a[i], b[j], acc[i][j]);
    }
    if (STAGES == 1u) barrier();
    if (more) store_slices(STAGES == 2u ? stage ^ 1u : 0u);
    barrier();
  }

  // Out through shared memory, 16 x 16 at a time, so that partial tiles, the bias and
  // the activation are handled per element.
  const uint staged = subgroup * 64u;
  [[unroll]] for (uint i = 0u; i < kFragmentRows; ++i)
    [[unroll]] for (uint j = 0u; j < kFragmentColumns; ++j) {
      coopMatStoreNV(acc[i][j], w_slice, staged, 4u, false);
      subgroupMemoryBarrierShared();
      subgroupBarrier();
      [[unroll]] for (uint e = 0u; e < 8u; ++e) {
        const uint element = lane + 32u * e;
        const uint row = row0 + sub_row + 16u * i + (element >> 4);
        const uint column = column0 + sub_column + 16u * j + (element & 15u);
        if (row < shape.rows && column < shape.n)
          store_output(row, column, uintBitsToFloat(w_slice[staged + (element >> 2)][element & 3u]));
      }
      subgroupBarrier();
    }
}
