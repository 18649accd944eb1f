#include <immintrin.h>

#include <cstdint>

#include "cpu/x86/gemv_kernels.h"
#include "cpu/x86/gemv_rows_512.h"

namespace ember::cpu::x86 {
// Everything here stays in an anonymous namespace: an inline function shared by name with
// a file built for another ISA could be merged by the linker into the wrong variant.
namespace {

struct F32Weights : F32Activations {
  using Element = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 load_tail(const float* p, int64_t count) { return _mm512_maskz_loadu_ps(first_lanes(count), p); }
};

struct F16Weights : F32Activations {
  using Element = uint16_t;
  static __m512 load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load_tail(const uint16_t* p, int64_t count) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first_lanes(count), p));
  }
};

// bf16 is the high half of an f32, so widening is a zero-extend and a 16-bit shift.
struct Bf16Weights : F32Activations {
  using Element = uint16_t;
  static __m512 widen(__m256i halves) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
  }
  static __m512 load(const uint16_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 load_tail(const uint16_t* p, int64_t count) {
    return widen(_mm256_maskz_loadu_epi16(first_lanes(count), p));
  }
};

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
