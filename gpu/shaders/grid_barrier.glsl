// A barrier across all workgroups of one dispatch (gpu/grid_barrier_probe.h): the
// including shader declares `grid_arrivals`, a uint in a coherent volatile buffer, and
// runs no more workgroups than the device holds at once (Vulkan does not promise that
// the others would ever start). Each workgroup's stores before the barrier are visible to
// every workgroup after it, through buffers the readers declare coherent.
//
// `base` is grid_arrivals before the dispatch and `target` the arrivals this barrier
// waits for, counted past base so that the 32-bit counter may wrap. Waiters read the
// counter by atomic adds of 0: on an H100, waiters that polled it by plain loads missed
// other workgroups' stores from before the barrier, and plain loads confirmed by one
// atomic add cost as much as atomic adds alone (docs/PERFORMANCE.md, "Twenty-fourth
// session").
void grid_barrier(uint base, uint target) {
  memoryBarrierBuffer();
  barrier();
  if (gl_LocalInvocationIndex == 0u) {
    atomicAdd(grid_arrivals, 1u);
    while (atomicAdd(grid_arrivals, 0u) - base < target) {
    }
    memoryBarrierBuffer();
  }
  barrier();
}
