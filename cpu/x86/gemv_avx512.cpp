#include <immintrin.h>

#include <cstdint>

#include "cpu/x86/gemv_kernels.h"

namespace ember::cpu::x86 {
// Everything here stays in an anonymous namespace: an inline function shared by name with
// a file built for another ISA could be merged by the linker into the wrong variant.
namespace {

constexpr int64_t kLanes = 16;

struct F32Weights {
  using Element = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 load_masked(const float* p, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, p); }
};

struct F16Weights {
  using Element = uint16_t;
  static __m512 load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load_masked(const uint16_t* p, __mmask16 mask) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p));
  }
};

// bf16 is the high half of an f32, so widening is a zero-extend and a 16-bit shift.
struct Bf16Weights {
  using Element = uint16_t;
  static __m512 widen(__m256i halves) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
  }
  static __m512 load(const uint16_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 load_masked(const uint16_t* p, __mmask16 mask) { return widen(_mm256_maskz_loadu_epi16(mask, p)); }
};

// Dot products of kRows weight rows with x, sharing each load of x across the rows. Every
// row keeps two accumulators (even and odd 16-lane blocks) and the same tail handling
// whatever kRows is, so a row's sum is identical in the 4-row and the 1-row variants.
// How far ahead of each row the loop prefetches. A decoded token streams every weight once,
// kRows rows at a time; rows of a 2048-wide layer (4 KiB of f16) end before the hardware
// prefetchers ramp up, so each row's tail prefetches the start of the row kRows on,
// which the next call reads. Prefetches never fault, so running past the matrix is harmless.
constexpr int64_t kPrefetchBytes = 1024;

template <class Element, int kRows>
[[gnu::always_inline]] inline void prefetch_ahead(const Element* w, int64_t in, int64_t i) {
  constexpr int64_t kAhead = kPrefetchBytes / static_cast<int64_t>(sizeof(Element));
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(Element));
  for (int r = 0; r < kRows; ++r) {
    const Element* row = w + r * in;
    for (int64_t offset = 0; offset < 2 * kLanes; offset += kLine) {
      const int64_t target = i + kAhead + offset;
      const Element* address = target < in ? row + target : row + kRows * in + (target - in);
      _mm_prefetch(reinterpret_cast<const char*>(address), _MM_HINT_T0);
    }
  }
}

template <class Weights, int kRows>
void dot_rows(const typename Weights::Element* w, int64_t in, const float* x, float* y) {
  __m512 even[kRows];
  __m512 odd[kRows];
  for (int r = 0; r < kRows; ++r) even[r] = odd[r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 * kLanes <= in; i += 2 * kLanes) {
    prefetch_ahead<typename Weights::Element, kRows>(w, in, i);
    const __m512 x_even = _mm512_loadu_ps(x + i);
    const __m512 x_odd = _mm512_loadu_ps(x + i + kLanes);
    for (int r = 0; r < kRows; ++r) {
      even[r] = _mm512_fmadd_ps(Weights::load(w + r * in + i), x_even, even[r]);
      odd[r] = _mm512_fmadd_ps(Weights::load(w + r * in + i + kLanes), x_odd, odd[r]);
    }
  }
  if (i + kLanes <= in) {
    const __m512 x_block = _mm512_loadu_ps(x + i);
    for (int r = 0; r < kRows; ++r) even[r] = _mm512_fmadd_ps(Weights::load(w + r * in + i), x_block, even[r]);
    i += kLanes;
  }
  if (i < in) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (in - i)) - 1u);
    const __m512 x_block = _mm512_maskz_loadu_ps(mask, x + i);
    for (int r = 0; r < kRows; ++r)
      odd[r] = _mm512_fmadd_ps(Weights::load_masked(w + r * in + i, mask), x_block, odd[r]);
  }
  for (int r = 0; r < kRows; ++r) y[r] = _mm512_reduce_add_ps(_mm512_add_ps(even[r], odd[r]));
}

template <class Weights>
void rows_kernel(const void* weight, int64_t rows, int64_t in, const float* x, float* y) {
  const auto* w = static_cast<const typename Weights::Element*>(weight);
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) dot_rows<Weights, 4>(w + r * in, in, x, y + r);
  for (; r < rows; ++r) dot_rows<Weights, 1>(w + r * in, in, x, y + r);
}

}  // namespace

void gemv_rows_avx512(ElementType weight_type, const void* weight, int64_t rows, int64_t in, const float* x,
                      float* y) {
  switch (weight_type) {
    case ElementType::f32: return rows_kernel<F32Weights>(weight, rows, in, x, y);
    case ElementType::f16: return rows_kernel<F16Weights>(weight, rows, in, x, y);
    case ElementType::bf16: return rows_kernel<Bf16Weights>(weight, rows, in, x, y);
    default: return;  // block types go through quantized_matmul
  }
}

}  // namespace ember::cpu::x86
