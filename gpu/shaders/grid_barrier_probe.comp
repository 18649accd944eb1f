#version 450
// A probe of what a barrier across all of one dispatch's workgroups costs, against a
// dispatch and the wait before it (gpu/grid_barrier_probe.h). Each workgroup runs
// `phases` phases; in each, its first invocation stores the count this phase waits for,
// base + (phase + 1) x workgroups, in the workgroup's slot, then every workgroup meets the
// others at one atomic counter in global memory: it adds 1 and waits until the count
// reaches that, reading it by an atomic add of 0 or, with poll_by_load, by a plain
// load (waiters then do not queue behind each other's writes). Then it reads the next workgroup's slot, which must hold at least that
// count, and counts a miss where it does not: the barrier must also make the stores
// before it visible. The workgroups wait for each other, so all of them must run
// side by side; Vulkan does not promise that, and the caller keeps their number to what
// one wave of the device holds.
layout(local_size_x = 64) in;

layout(std430, binding = 0) coherent volatile buffer Counter {
  uint arrived;
  uint misses;
} counter;
layout(std430, binding = 1) coherent buffer Slots { uint slots[]; };

layout(push_constant) uniform Shape {
  uint phases;
  uint base;  // the counter's value before this dispatch
  uint poll_by_load;
} shape;

void main() {
  const uint groups = gl_NumWorkGroups.x;
  const uint group = gl_WorkGroupID.x;
  for (uint phase = 0u; phase < shape.phases; ++phase) {
    if (gl_LocalInvocationIndex == 0u) {
      // Counts past the base, so that the 32-bit counter may wrap between dispatches.
      const uint target = (phase + 1u) * groups;
      atomicExchange(slots[group], shape.base + target);
      memoryBarrierBuffer();
      atomicAdd(counter.arrived, 1u);
      if (shape.poll_by_load != 0u) {
        while (counter.arrived - shape.base < target) {
        }
      } else {
        while (atomicAdd(counter.arrived, 0u) - shape.base < target) {
        }
      }
      memoryBarrierBuffer();
      if (atomicAdd(slots[(group + 1u) % groups], 0u) - shape.base < target) atomicAdd(counter.misses, 1u);
    }
    barrier();
  }
}
