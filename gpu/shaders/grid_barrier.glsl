// A barrier across all workgroups of one dispatch (gpu/grid_barrier_probe.h): the
// including shader declares `grid_arrivals`, a uint in a coherent volatile buffer, and
// runs no more workgroups than the device holds at once (Vulkan does not promise that
// the others would ever start). Each workgroup's stores before the barrier are visible to
// every workgroup after it, through buffers the readers declare coherent.
//
// `base` is grid_arrivals before the dispatch and `target` the arrivals this barrier
// waits for, counted past base so that the 32-bit counter may wrap. Waiters read the
// counter by an atomic add of 0 or, with `poll_by_load`, by a plain load, which measured
// faster on an H100 (waiters then do not queue behind each other's atomics).
void grid_barrier(uint base, uint target, bool poll_by_load) {
  memoryBarrierBuffer();
  barrier();
  if (gl_LocalInvocationIndex == 0u) {
    atomicAdd(grid_arrivals, 1u);
    if (poll_by_load) {
      while (grid_arrivals - base < target) {
      }
    } else {
      while (atomicAdd(grid_arrivals, 0u) - base < target) {
      }
    }
    memoryBarrierBuffer();
  }
  barrier();
}
