#include <immintrin.h>
#include <omp.h>

#include <vector>

#include "bench/ceilings.h"

namespace ember::bench {

float fma_avx512_chains(int64_t iterations, int threads) {
  std::vector<float> per_thread(static_cast<size_t>(threads), 0.0f);
#pragma omp parallel num_threads(threads)
  {
    // 16 chains: enough independent FMAs to cover 2 FMA ports × 4-cycle latency twice over.
    __m512 acc[16];
    for (int c = 0; c < 16; ++c) acc[c] = _mm512_set1_ps(1.0f + 0.001f * c);
    const __m512 multiplier = _mm512_set1_ps(0.999999f);
    const __m512 addend = _mm512_set1_ps(1e-7f);
    for (int64_t i = 0; i < iterations; ++i)
      for (int c = 0; c < 16; ++c) acc[c] = _mm512_fmadd_ps(acc[c], multiplier, addend);
    __m512 total = acc[0];
    for (int c = 1; c < 16; ++c) total = _mm512_add_ps(total, acc[c]);
    int thread = 0;
#ifdef _OPENMP
    thread = omp_get_thread_num();
#endif
    per_thread[static_cast<size_t>(thread)] = _mm512_reduce_add_ps(total);
  }
  float sum = 0.0f;
  for (float value : per_thread) sum += value;
  return sum;
}

float read_sum_avx512(const float* data, int64_t count, int threads) {
  constexpr int64_t kBlock = 128;  // 8 accumulators × 16 lanes
  const int64_t blocks = count / kBlock;
  float total = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    __m512 acc[8];
    for (auto& a : acc) a = _mm512_setzero_ps();
#pragma omp for schedule(static)
    for (int64_t block = 0; block < blocks; ++block) {
      const float* at = data + block * kBlock;
      for (int a = 0; a < 8; ++a) acc[a] = _mm512_add_ps(acc[a], _mm512_load_ps(at + 16 * a));
    }
    for (int a = 1; a < 8; ++a) acc[0] = _mm512_add_ps(acc[0], acc[a]);
    total += _mm512_reduce_add_ps(acc[0]);
  }
  return total;
}

}  // namespace ember::bench
