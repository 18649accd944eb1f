#include "quant/convert.h"

#include "quant/bf16.h"
#include "quant/f16.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace ember::quant {

void f16_to_f32_row(const uint16_t* in, float* out, int64_t count) {
  int64_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= count; i += 8) {
    __m128i half = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(half));
  }
#endif
  for (; i < count; ++i) out[i] = f16_to_f32(in[i]);
}

void f32_to_f16_row(const float* in, uint16_t* out, int64_t count) {
  int64_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= count; i += 8) {
    __m128i half = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), half);
  }
#endif
  for (; i < count; ++i) out[i] = f32_to_f16(in[i]);
}

void bf16_to_f32_row(const uint16_t* in, float* out, int64_t count) {
  for (int64_t i = 0; i < count; ++i) out[i] = bf16_to_f32(in[i]);
}

void f32_to_bf16_row(const float* in, uint16_t* out, int64_t count) {
  for (int64_t i = 0; i < count; ++i) out[i] = f32_to_bf16(in[i]);
}

}  // namespace ember::quant
