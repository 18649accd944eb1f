#include <immintrin.h>

#include <cstdint>

#include "cpu/x86/gemv_kernels.h"

namespace ember::cpu::x86 {
// Everything here stays in an anonymous namespace: an inline function shared by name with
// a file built for another ISA could be merged by the linker into the wrong variant.
namespace {

constexpr int64_t kLanes = 8;

struct F32Weights {
  using Element = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
};

struct F16Weights {
  using Element = uint16_t;
  static __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
};

// bf16 is the high half of an f32, so widening is a zero-extend and a 16-bit shift.
struct Bf16Weights {
  using Element = uint16_t;
  static __m256 load(const uint16_t* p) {
    const __m256i widened = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(widened, 16));
  }
};

// Fixed pairing order, so the horizontal sum is reproducible.
float horizontal_sum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

// Copies the last `count` (< kLanes) elements into a zero-padded block, so the tail goes
// through the same full-width load and multiply-add as the body. AVX2 has no masked
// 16-bit load, and a plain loop keeps the f32 and 16-bit cases alike.
template <class Element>
struct PaddedTail {
  alignas(32) Element values[kLanes] = {};
  PaddedTail(const Element* source, int64_t count) {
    for (int64_t i = 0; i < count; ++i) values[i] = source[i];
  }
};

// Dot products of kRows weight rows with x, sharing each load of x across the rows. Every
// row keeps two accumulators (even and odd 8-lane blocks) and the same tail handling
// whatever kRows is, so a row's sum is identical in the 4-row and the 1-row variants.
template <class Weights, int kRows>
void dot_rows(const typename Weights::Element* w, int64_t in, const float* x, float* y) {
  __m256 even[kRows];
  __m256 odd[kRows];
  for (int r = 0; r < kRows; ++r) even[r] = odd[r] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 * kLanes <= in; i += 2 * kLanes) {
    const __m256 x_even = _mm256_loadu_ps(x + i);
    const __m256 x_odd = _mm256_loadu_ps(x + i + kLanes);
    for (int r = 0; r < kRows; ++r) {
      even[r] = _mm256_fmadd_ps(Weights::load(w + r * in + i), x_even, even[r]);
      odd[r] = _mm256_fmadd_ps(Weights::load(w + r * in + i + kLanes), x_odd, odd[r]);
    }
  }
  if (i + kLanes <= in) {
    const __m256 x_block = _mm256_loadu_ps(x + i);
    for (int r = 0; r < kRows; ++r) even[r] = _mm256_fmadd_ps(Weights::load(w + r * in + i), x_block, even[r]);
    i += kLanes;
  }
  if (i < in) {
    const PaddedTail<float> x_tail(x + i, in - i);
    const __m256 x_block = _mm256_load_ps(x_tail.values);
    for (int r = 0; r < kRows; ++r) {
      const PaddedTail<typename Weights::Element> w_tail(w + r * in + i, in - i);
      odd[r] = _mm256_fmadd_ps(Weights::load(w_tail.values), x_block, odd[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) y[r] = horizontal_sum(_mm256_add_ps(even[r], odd[r]));
}

template <class Weights>
void rows_kernel(const void* weight, int64_t rows, int64_t in, const float* x, float* y) {
  const auto* w = static_cast<const typename Weights::Element*>(weight);
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) dot_rows<Weights, 4>(w + r * in, in, x, y + r);
  for (; r < rows; ++r) dot_rows<Weights, 1>(w + r * in, in, x, y + r);
}

}  // namespace

void gemv_rows_avx2(ElementType weight_type, const void* weight, int64_t rows, int64_t in, const float* x, float* y) {
  switch (weight_type) {
    case ElementType::f32: return rows_kernel<F32Weights>(weight, rows, in, x, y);
    case ElementType::f16: return rows_kernel<F16Weights>(weight, rows, in, x, y);
    case ElementType::bf16: return rows_kernel<Bf16Weights>(weight, rows, in, x, y);
    default: return;  // block types go through quantized_matmul
  }
}

}  // namespace ember::cpu::x86
