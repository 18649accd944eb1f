#include <immintrin.h>

#include <cstdint>

#include "cpu/x86/attention_cache_kernels.h"

namespace ember::cpu::x86 {
// Everything here stays in an anonymous namespace: an inline function shared by name with
// a file built for another ISA could be merged by the linker into the wrong variant.
namespace {

constexpr int64_t kLanes = 16;

__m512 load16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
__m512 load16(const float* p) { return _mm512_loadu_ps(p); }

// rows[i] becomes column i of the 16 x 16 block the rows held: pairs of rows interleaved
// by element, then by element pair, then 128-bit lanes gathered across four rows, then
// across all sixteen.
void transpose16(__m512 rows[kLanes]) {
  __m512 pairs[kLanes], quads[kLanes], halves[kLanes];
  for (int i = 0; i < 8; ++i) {
    pairs[2 * i] = _mm512_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
    pairs[2 * i + 1] = _mm512_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
  }
  // quads[4q + k], lane L: column 4L + k of rows 4q .. 4q + 3.
  for (int q = 0; q < 4; ++q) {
    const __m512d low_pair = _mm512_castps_pd(pairs[4 * q]), high_pair = _mm512_castps_pd(pairs[4 * q + 1]);
    const __m512d low_next = _mm512_castps_pd(pairs[4 * q + 2]), high_next = _mm512_castps_pd(pairs[4 * q + 3]);
    quads[4 * q] = _mm512_castpd_ps(_mm512_unpacklo_pd(low_pair, low_next));
    quads[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(low_pair, low_next));
    quads[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(high_pair, high_next));
    quads[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(high_pair, high_next));
  }
  // halves[k] holds lanes 0 and 2 of rows 0-7's quads, halves[4 + k] lanes 1 and 3; the
  // same for rows 8-15 in halves[8 + k] and halves[12 + k].
  for (int k = 0; k < 4; ++k) {
    halves[k] = _mm512_shuffle_f32x4(quads[k], quads[4 + k], 0x88);
    halves[4 + k] = _mm512_shuffle_f32x4(quads[k], quads[4 + k], 0xdd);
    halves[8 + k] = _mm512_shuffle_f32x4(quads[8 + k], quads[12 + k], 0x88);
    halves[12 + k] = _mm512_shuffle_f32x4(quads[8 + k], quads[12 + k], 0xdd);
  }
  for (int k = 0; k < 4; ++k) {
    rows[k] = _mm512_shuffle_f32x4(halves[k], halves[8 + k], 0x88);
    rows[8 + k] = _mm512_shuffle_f32x4(halves[k], halves[8 + k], 0xdd);
    rows[4 + k] = _mm512_shuffle_f32x4(halves[4 + k], halves[12 + k], 0x88);
    rows[12 + k] = _mm512_shuffle_f32x4(halves[4 + k], halves[12 + k], 0xdd);
  }
}

template <class Element>
void keys_transposed(const Element* rows, int64_t stride, int64_t count, int64_t length, float* out,
                     int64_t out_stride) {
  for (int64_t first = 0; first < count; first += kLanes) {
    const int64_t present = count - first < kLanes ? count - first : kLanes;
    for (int64_t d = 0; d < length; d += kLanes) {
      __m512 block[kLanes];
      for (int64_t j = 0; j < kLanes; ++j)
        block[j] = j < present ? load16(rows + (first + j) * stride + d) : _mm512_setzero_ps();
      transpose16(block);
      for (int64_t i = 0; i < kLanes; ++i) _mm512_storeu_ps(out + (d + i) * out_stride + first, block[i]);
    }
  }
}

}  // namespace

void widen_keys_transposed_avx512(const uint16_t* rows, int64_t stride, int64_t count, int64_t length, float* out,
                                  int64_t out_stride) {
  keys_transposed(rows, stride, count, length, out, out_stride);
}

void widen_keys_transposed_avx512(const float* rows, int64_t stride, int64_t count, int64_t length, float* out,
                                  int64_t out_stride) {
  keys_transposed(rows, stride, count, length, out, out_stride);
}

void widen_values_avx512(const uint16_t* rows, int64_t stride, int64_t count, int64_t length, float* out,
                         int64_t out_stride) {
  for (int64_t j = 0; j < count; ++j)
    for (int64_t d = 0; d < length; d += kLanes) _mm512_storeu_ps(out + j * out_stride + d, load16(rows + j * stride + d));
}

}  // namespace ember::cpu::x86
