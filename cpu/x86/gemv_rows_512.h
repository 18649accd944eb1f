// The 512-bit GEMV row loop shared by the AVX-512 file (f32, f16 and bf16 widened to f32)
// and the AVX512-BF16 file (bf16 · bf16 pairs with vdpbf16ps). They differ only in the
// `Weights` policy, which says how many elements one vector step covers, how x is loaded
// for them and how a step multiplies and adds. Everything sits in an anonymous namespace,
// so each including file (compiled for its own ISA) gets its own copy.
//
// A policy provides:
//   Element, kStep               weight element type; elements per vector step
//   Activations                  what x becomes for one step
//   load_x(x), load_x_tail(x, n) x[0, kStep), or its first n < kStep (the rest zero)
//   load(w), load_tail(w, n)     the weights for the same elements
//   multiply_add(w, x, sum)      sum plus the products of one step, in 16 f32 lanes
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace ember::cpu::x86 {
namespace {

// How far ahead of each row the loop prefetches. A decoded token streams every weight once,
// kRows rows at a time; rows of a 2048-wide layer (4 KiB of f16) end before the hardware
// prefetchers ramp up, so each row's tail prefetches the start of the row kRows on,
// which the next call reads. Prefetches never fault, so running past the matrix is harmless.
constexpr int64_t kPrefetchBytes = 1024;

template <class Element, int kRows, int64_t kElements>
[[gnu::always_inline]] inline void prefetch_ahead(const Element* w, int64_t in, int64_t i) {
  constexpr int64_t kAhead = kPrefetchBytes / static_cast<int64_t>(sizeof(Element));
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(Element));
  for (int r = 0; r < kRows; ++r) {
    const Element* row = w + r * in;
    for (int64_t offset = 0; offset < kElements; offset += kLine) {
      const int64_t target = i + kAhead + offset;
      const Element* address = target < in ? row + target : row + kRows * in + (target - in);
      _mm_prefetch(reinterpret_cast<const char*>(address), _MM_HINT_T0);
    }
  }
}

// Dot products of kRows weight rows with x, sharing each load of x across the rows. Every
// row keeps two accumulators (even and odd steps) and the same tail handling whatever
// kRows is, so a row's sum is identical in the 4-row and the 1-row variants.
template <class Weights, int kRows>
void dot_rows(const typename Weights::Element* w, int64_t in, const float* x, float* y) {
  constexpr int64_t kStep = Weights::kStep;
  __m512 even[kRows];
  __m512 odd[kRows];
  for (int r = 0; r < kRows; ++r) even[r] = odd[r] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 * kStep <= in; i += 2 * kStep) {
    prefetch_ahead<typename Weights::Element, kRows, 2 * kStep>(w, in, i);
    const auto x_even = Weights::load_x(x + i);
    const auto x_odd = Weights::load_x(x + i + kStep);
    for (int r = 0; r < kRows; ++r) {
      even[r] = Weights::multiply_add(Weights::load(w + r * in + i), x_even, even[r]);
      odd[r] = Weights::multiply_add(Weights::load(w + r * in + i + kStep), x_odd, odd[r]);
    }
  }
  if (i + kStep <= in) {
    const auto x_step = Weights::load_x(x + i);
    for (int r = 0; r < kRows; ++r) even[r] = Weights::multiply_add(Weights::load(w + r * in + i), x_step, even[r]);
    i += kStep;
  }
  if (i < in) {
    const int64_t count = in - i;
    const auto x_step = Weights::load_x_tail(x + i, count);
    for (int r = 0; r < kRows; ++r)
      odd[r] = Weights::multiply_add(Weights::load_tail(w + r * in + i, count), x_step, odd[r]);
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

// The first `count` (< 16) of 16 lanes.
inline __mmask16 first_lanes(int64_t count) { return static_cast<__mmask16>((1u << count) - 1u); }

// Policies that widen the weights to f32 take x as it is, 16 lanes a step.
struct F32Activations {
  using Activations = __m512;
  static constexpr int64_t kStep = 16;
  static __m512 load_x(const float* x) { return _mm512_loadu_ps(x); }
  static __m512 load_x_tail(const float* x, int64_t count) { return _mm512_maskz_loadu_ps(first_lanes(count), x); }
  static __m512 multiply_add(__m512 w, __m512 x, __m512 sum) { return _mm512_fmadd_ps(w, x, sum); }
};

}  // namespace
}  // namespace ember::cpu::x86
