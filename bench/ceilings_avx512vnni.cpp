#include <immintrin.h>
#include <omp.h>

#include <vector>

#include "bench/ceilings.h"

namespace ember::bench {

int32_t int8_dot_avx512vnni_chains(int64_t iterations, int threads) {
  std::vector<int32_t> per_thread(static_cast<size_t>(threads), 0);
#pragma omp parallel num_threads(threads)
  {
    // 16 independent vpdpbusd chains, as in the FMA probe: enough to hide the latency on
    // every port that executes them.
    __m512i acc[16];
    for (int c = 0; c < 16; ++c) acc[c] = _mm512_set1_epi32(c);
    const __m512i unsigned_bytes = _mm512_set1_epi8(3);
    const __m512i signed_bytes = _mm512_set1_epi8(-2);
    for (int64_t i = 0; i < iterations; ++i)
      for (int c = 0; c < 16; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], unsigned_bytes, signed_bytes);
    __m512i total = acc[0];
    for (int c = 1; c < 16; ++c) total = _mm512_add_epi32(total, acc[c]);
    per_thread[static_cast<size_t>(omp_get_thread_num())] = _mm512_reduce_add_epi32(total);
  }
  int32_t sum = 0;
  for (int32_t value : per_thread) sum += value;
  return sum;
}

}  // namespace ember::bench
