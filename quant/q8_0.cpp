#include <cmath>

#include "quant/f16.h"
#include "quant/quantize.h"

namespace ember::quant {

float quantize_codes_q8(const float* x, int8_t* qs) {
  float amax = 0.0f;
  for (int i = 0; i < kQK8_0; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  // The codes use the f32 scale, not its f16 rounding: ggml does the same, and the
  // error of the f16 scale is far below the error of the 8-bit codes.
  const float d = amax / 127.0f;
  const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < kQK8_0; ++i) qs[i] = static_cast<int8_t>(std::round(x[i] * inverse));
  return d;
}

void quantize_row_q8_0_reference(const float* x, BlockQ8_0* y, int64_t count) {
  const int64_t blocks = count / kQK8_0;
  for (int64_t b = 0; b < blocks; ++b) y[b].d = f32_to_f16(quantize_codes_q8(x + b * kQK8_0, y[b].qs));
}

void dequantize_codes_q8(uint16_t d, const int8_t* qs, float* y) {
  const float scale = f16_to_f32(d);
  for (int i = 0; i < kQK8_0; ++i) y[i] = qs[i] * scale;
}

void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t count) {
  for (int64_t b = 0; b < count / kQK8_0; ++b) dequantize_codes_q8(x[b].d, x[b].qs, y + b * kQK8_0);
}

}  // namespace ember::quant
