#include <immintrin.h>

#include <cstdint>

#include "cpu/x86/gemv_kernels.h"
#include "cpu/x86/gemv_rows_512.h"

namespace ember::cpu::x86 {
// Everything here stays in an anonymous namespace: an inline function shared by name with
// a file built for another ISA could be merged by the linker into the wrong variant.
namespace {

// 32 bf16 weights a step against x rounded to bf16 (to nearest even) in registers:
// vdpbf16ps adds each lane's two products, exact in f32, so the only rounding beyond the
// f32 sums is x's. One conversion of x serves every row of the group.
struct Bf16PairWeights {
  using Element = uint16_t;
  using Activations = __m512bh;
  static constexpr int64_t kStep = 32;
  static __m512bh load_x(const float* x) {
    return _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x));
  }
  static __m512bh load_x_tail(const float* x, int64_t count) {
    const __mmask16 low = count >= 16 ? __mmask16{0xffff} : first_lanes(count);
    const __mmask16 high = count > 16 ? first_lanes(count - 16) : __mmask16{0};
    return _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(high, x + 16), _mm512_maskz_loadu_ps(low, x));
  }
  static __m512bh load(const uint16_t* p) { return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p)); }
  static __m512bh load_tail(const uint16_t* p, int64_t count) {
    return reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(static_cast<__mmask32>((1u << count) - 1u), p));
  }
  static __m512 multiply_add(__m512bh w, __m512bh x, __m512 sum) { return _mm512_dpbf16_ps(sum, w, x); }
};

}  // namespace

void gemv_rows_avx512bf16(ElementType weight_type, const void* weight, int64_t rows, int64_t in, const float* x,
                          float* y) {
  if (weight_type == ElementType::bf16) rows_kernel<Bf16PairWeights>(weight, rows, in, x, y);
}

}  // namespace ember::cpu::x86
