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
  // Each thread reads its share as 4 interleaved streams, 2 registers per stream per
  // step: one stream per thread leaves bandwidth unused (the GEMV, reading 4 rows at a
  // time, measured more than a single-stream sum did).
  constexpr int kStreams = 4;
  constexpr int64_t kStep = 32;  // floats per stream per step: two 512-bit loads
  float total = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    const int thread = omp_get_thread_num();
    const int64_t share = count / threads / (kStreams * kStep) * (kStreams * kStep);
    const float* begin = data + thread * share;
    const int64_t stream_length = share / kStreams;
    __m512 acc[2 * kStreams];
    for (auto& a : acc) a = _mm512_setzero_ps();
    for (int64_t offset = 0; offset < stream_length; offset += kStep)
      for (int s = 0; s < kStreams; ++s) {
        const float* at = begin + s * stream_length + offset;
        acc[2 * s] = _mm512_add_ps(acc[2 * s], _mm512_load_ps(at));
        acc[2 * s + 1] = _mm512_add_ps(acc[2 * s + 1], _mm512_load_ps(at + 16));
      }
    for (int a = 1; a < 2 * kStreams; ++a) acc[0] = _mm512_add_ps(acc[0], acc[a]);
    total += _mm512_reduce_add_ps(acc[0]);
  }
  return total;
}

}  // namespace ember::bench
