#include <cmath>

#include "quant/f16.h"
#include "quant/quantize.h"

namespace ember::quant {

void quantize_row_q8_0_reference(const float* x, BlockQ8_0* y, int64_t count) {
  const int64_t blocks = count / kQK8_0;
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * kQK8_0;
    float amax = 0.0f;
    for (int i = 0; i < kQK8_0; ++i) amax = std::fmax(amax, std::fabs(in[i]));
    // The codes use the f32 scale, not its f16 rounding: ggml does the same, and the
    // error of the f16 scale is far below the error of the 8-bit codes.
    const float d = amax / 127.0f;
    const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int i = 0; i < kQK8_0; ++i) y[b].qs[i] = static_cast<int8_t>(std::round(in[i] * inverse));
  }
}

void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t count) {
  const int64_t blocks = count / kQK8_0;
  for (int64_t b = 0; b < blocks; ++b) {
    const float d = f16_to_f32(x[b].d);
    for (int i = 0; i < kQK8_0; ++i) y[b * kQK8_0 + i] = x[b].qs[i] * d;
  }
}

}  // namespace ember::quant
