#include <immintrin.h>

#include "bench/ceilings.h"

namespace ember::bench {

float bf16_dot_avx512bf16_chains(int64_t iterations, int threads) {
  float total = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    // 16 independent vdpbf16ps chains, as in the FMA probe.
    __m512 acc[16];
    for (int c = 0; c < 16; ++c) acc[c] = _mm512_set1_ps(1.0f + 0.001f * c);
    const __m512bh left = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
    const __m512bh right = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(-1e-3f));
    for (int64_t i = 0; i < iterations; ++i)
      for (int c = 0; c < 16; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], left, right);
    for (int c = 1; c < 16; ++c) acc[0] = _mm512_add_ps(acc[0], acc[c]);
    total += _mm512_reduce_add_ps(acc[0]);
  }
  return total;
}

}  // namespace ember::bench
