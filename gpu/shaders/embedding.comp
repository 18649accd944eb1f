#version 450
#extension GL_GOOGLE_include_directive : require
// Row gather: y[i] = table[ids[i]] as f32, the table in f32, f16, q8_0 or q4_0 (its GGUF
// bytes, bound as words; block tables as the file stores them or split,
// gpu/block_layout.h), one invocation per output element. The values are the CPU's
// (cpu/embedding.cpp): f16 widened exactly, a block's f16 scale times its code in f32.
// The host checks every id against the table's rows before recording
// (core/vulkan_backend.cpp), so none is checked here.
layout(constant_id = 0) const uint TABLE_TYPE = 0;  // gpu::WeightType: f32, f16, q8_0, q4_0
layout(constant_id = 1) const uint SPLIT_BLOCKS = 0;  // gpu::BlockLayout: file, split

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Table { uint table[]; };
layout(std430, binding = 1) readonly buffer Ids { int ids[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Shape {
  uint rows;       // ids, and rows of y
  uint cols;
  uint row_bytes;  // bytes of one table row
  uint table_rows;
} shape;

#define STORED_WORDS table
#include "stored_bytes.glsl"

void main() {
  // The elements may outnumber one dispatch dimension, so the grid is two-dimensional.
  const uint index = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 256u + gl_LocalInvocationID.x;
  if (index >= shape.rows * shape.cols) return;
  const uint c = index % shape.cols;
  const uint id = uint(ids[index / shape.cols]);
  const uint row = id * shape.row_bytes;
  float value;
  if (TABLE_TYPE == 0u) {
    value = uintBitsToFloat(table[(row >> 2) + c]);
  } else if (TABLE_TYPE == 1u) {
    value = half_at(row + 2u * c);
  } else {
    // q8_0: a block's f16 scale and 32 int8 codes; q4_0: its scale and 16 bytes, byte j
    // holding code j in its low nibble and code j + 16 in its high one, each standing for
    // itself minus 8. In the file's layout the scale comes first in the block.
    const uint code_bytes = TABLE_TYPE == 2u ? 32u : 16u;
    const uint blocks_per_row = shape.cols / 32u;
    const uint block = id * blocks_per_row + c / 32u;
    const uint file_block = row + (c / 32u) * (code_bytes + 2u);
    const float scale = SPLIT_BLOCKS != 0u ? half_at(shape.table_rows * blocks_per_row * code_bytes + 2u * block)
                                           : half_at(file_block);
    const uint codes = SPLIT_BLOCKS != 0u ? block * code_bytes : file_block + 2u;
    const uint within = c % 32u;
    if (TABLE_TYPE == 2u) {
      value = scale * float(bitfieldExtract(int(byte_at(codes + within)), 0, 8));
    } else {
      const uint nibbles = byte_at(codes + within % 16u) >> (within >= 16u ? 4u : 0u);
      value = scale * float(int(nibbles & 15u) - 8);
    }
  }
  y[index] = value;
}
