#include <algorithm>
#include <cfloat>

#include "quant/f16.h"
#include "quant/quantize.h"

namespace ember::quant {

void quantize_row_q4_1_reference(const float* x, BlockQ4_1* y, int64_t count) {
  constexpr int kHalf = kQK4_1 / 2;
  const int64_t blocks = count / kQK4_1;
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * kQK4_1;
    float min = FLT_MAX;
    float max = -FLT_MAX;
    for (int i = 0; i < kQK4_1; ++i) {
      min = std::min(min, in[i]);
      max = std::max(max, in[i]);
    }
    const float d = (max - min) / 15.0f;
    const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(min);
    for (int j = 0; j < kHalf; ++j) {
      // (x - min) * inverse lies in [0, 15]: truncating after adding 0.5 rounds it.
      const int low = std::min(15, static_cast<int>((in[j] - min) * inverse + 0.5f));
      const int high = std::min(15, static_cast<int>((in[j + kHalf] - min) * inverse + 0.5f));
      y[b].qs[j] = static_cast<uint8_t>(low | high << 4);
    }
  }
}

void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t count) {
  constexpr int kHalf = kQK4_1 / 2;
  const int64_t blocks = count / kQK4_1;
  for (int64_t b = 0; b < blocks; ++b) {
    const float d = f16_to_f32(x[b].d);
    const float m = f16_to_f32(x[b].m);
    float* out = y + b * kQK4_1;
    for (int j = 0; j < kHalf; ++j) {
      out[j] = (x[b].qs[j] & 0x0f) * d + m;
      out[j + kHalf] = (x[b].qs[j] >> 4) * d + m;
    }
  }
}

}  // namespace ember::quant
