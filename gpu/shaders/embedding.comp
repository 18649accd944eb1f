#version 450
#extension GL_GOOGLE_include_directive : require
// Row gather: y[i] = table[ids[i]] as f32, the table in f32, f16, q8_0 or q4_0 (its GGUF
// bytes, bound as words), one invocation per output element. The values are the CPU's
// (cpu/embedding.cpp): f16 widened exactly, a block's f16 scale times its code in f32.
// The host checks every id against the table's rows before recording
// (core/vulkan_backend.cpp), so none is checked here.
layout(constant_id = 0) const uint TABLE_TYPE = 0;  // gpu::WeightType: f32, f16, q8_0, q4_0

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Table { uint table[]; };
layout(std430, binding = 1) readonly buffer Ids { int ids[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Shape {
  uint rows;       // ids, and rows of y
  uint cols;
  uint row_bytes;  // bytes of one table row
} shape;

#define STORED_WORDS table
#include "stored_bytes.glsl"

void main() {
  // The elements may outnumber one dispatch dimension, so the grid is two-dimensional.
  const uint index = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 256u + gl_LocalInvocationID.x;
  if (index >= shape.rows * shape.cols) return;
  const uint c = index % shape.cols;
  const uint row = uint(ids[index / shape.cols]) * shape.row_bytes;
  float value;
  if (TABLE_TYPE == 0u) {
    value = uintBitsToFloat(table[(row >> 2) + c]);
  } else if (TABLE_TYPE == 1u) {
    value = half_at(row + 2u * c);
  } else if (TABLE_TYPE == 2u) {
    // q8_0: 2 bytes of scale, then 32 int8 codes.
    const uint block = row + (c / 32u) * 34u;
    value = half_at(block) * float(bitfieldExtract(int(byte_at(block + 2u + c % 32u)), 0, 8));
  } else {
    // q4_0: 2 bytes of scale, then 16 bytes; byte j holds code j in its low nibble and
    // code j + 16 in its high one, each standing for itself minus 8.
    const uint block = row + (c / 32u) * 18u;
    const uint within = c % 32u;
    const uint codes = byte_at(block + 2u + within % 16u) >> (within >= 16u ? 4u : 0u);
    value = half_at(block) * float(int(codes & 15u) - 8);
  }
  y[index] = value;
}
