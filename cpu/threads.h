// The one thread-count setting of the CPU kernels. Every kernel runs its OpenMP regions
// with exactly threads() threads and a static schedule, so a given thread count always
// splits work the same way and gives bit-identical results.
#pragma once

#include <cstdint>

namespace ember::cpu {

void set_threads(int count);  // count < 1 means "all cores"
int threads();

// body(i) for every i in [0, count), vectorised: across threads() threads from
// min_parallel elements on, on the calling thread below. The small case is a loop of its
// own, not `parallel for simd ... if (...)`: GCC's outlined body ran about 9x slower when
// the if clause kept it on one thread (15 us against 1.7 us for a decoded token's 5632
// swiglu elements; docs/PERFORMANCE.md, fifteenth session).
template <class Body>
void parallel_simd_for(int64_t count, int64_t min_parallel, Body body) {
  if (count < min_parallel) {
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) body(i);
    return;
  }
#pragma omp parallel for simd num_threads(threads()) schedule(static)
  for (int64_t i = 0; i < count; ++i) body(i);
}

}  // namespace ember::cpu
