#version 450
#extension GL_GOOGLE_include_directive : require
// A probe of what a barrier across all of one dispatch's workgroups costs, against a
// dispatch and the wait before it (gpu/grid_barrier_probe.h). Each workgroup runs
// `phases` phases; in each, its first invocation stores the count this phase waits for,
// base + (phase + 1) x workgroups, in the workgroup's slot, then every workgroup meets the
// others at grid_barrier.glsl's counter. Then it reads the next workgroup's slot, which
// must hold at least that count, and counts a miss where it does not: the barrier must
// also make the stores before it visible.
layout(local_size_x = 64) in;

layout(std430, binding = 0) coherent volatile buffer Counter {
  uint grid_arrivals;
  uint misses;
};
layout(std430, binding = 1) coherent buffer Slots { uint slots[]; };

layout(push_constant) uniform Shape {
  uint phases;
  uint base;  // the counter's value before this dispatch
} shape;

#include "grid_barrier.glsl"

void main() {
  const uint groups = gl_NumWorkGroups.x;
  const uint group = gl_WorkGroupID.x;
  for (uint phase = 0u; phase < shape.phases; ++phase) {
    const uint target = (phase + 1u) * groups;
    if (gl_LocalInvocationIndex == 0u) atomicExchange(slots[group], shape.base + target);
    grid_barrier(shape.base, target);
    if (gl_LocalInvocationIndex == 0u && atomicAdd(slots[(group + 1u) % groups], 0u) - shape.base < target)
      atomicAdd(misses, 1u);
  }
}
