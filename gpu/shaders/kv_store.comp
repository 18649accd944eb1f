#version 450
#extension GL_GOOGLE_include_directive : require
// Stores a segment's new keys and values (f32 rows) into their KV caches at its
// positions, as the CPU stores them: f32 as they are, or f16 rounded to nearest, ties to
// even (the CPU's F16C conversion; f16_pair_word in q8_rounding.glsl). CACHE_TYPE 0 is
// f32, 1 f16; an f16 invocation writes one word, two values (the host sends only even
// row lengths). The grid's z picks keys (0) or values
// (1): both in one dispatch, before a prompt's tiled attention (attention.comp stores a
// short segment's rows itself).
#include "q8_rounding.glsl"

layout(constant_id = 0) const uint CACHE_TYPE = 0;

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer KeyRows { float key_rows[]; };
layout(std430, binding = 1) buffer KeyCache { uint key_cache[]; };
layout(std430, binding = 2) readonly buffer ValueRows { float value_rows[]; };
layout(std430, binding = 3) buffer ValueCache { uint value_cache[]; };

float row_value(uint i) { return gl_WorkGroupID.z == 0u ? key_rows[i] : value_rows[i]; }

void store(uint i, uint word) {
  if (gl_WorkGroupID.z == 0u)
    key_cache[i] = word;
  else
    value_cache[i] = word;
}

layout(push_constant) uniform Shape {
  uint source_first;  // first element of the new rows
  uint target_first;  // first cache element they go to (even for f16)
  uint count;         // elements
} shape;

void main() {
  const uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 256u + gl_LocalInvocationID.x;
  if (CACHE_TYPE == 0u) {
    if (i < shape.count) store(shape.target_first + i, floatBitsToUint(row_value(shape.source_first + i)));
  } else if (2u * i < shape.count) {
    const uint source = shape.source_first + 2u * i;
    store(shape.target_first / 2u + i, f16_pair_word(vec2(row_value(source), row_value(source + 1u))));
  }
}
