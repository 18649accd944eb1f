#include <algorithm>
#include <cmath>

#include "quant/f16.h"
#include "quant/quantize.h"

namespace ember::quant {

void quantize_row_q4_0_reference(const float* x, BlockQ4_0* y, int64_t count) {
  constexpr int kHalf = kQK4_0 / 2;
  const int64_t blocks = count / kQK4_0;
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * kQK4_0;
    // The signed weight of largest magnitude (the first one on a tie) becomes code 0
    // exactly; the opposite sign gets codes up to 15, one step short of symmetric.
    float amax = 0.0f;
    float extreme = 0.0f;
    for (int i = 0; i < kQK4_0; ++i) {
      if (amax < std::fabs(in[i])) {
        amax = std::fabs(in[i]);
        extreme = in[i];
      }
    }
    const float d = extreme / -8.0f;
    const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kHalf; ++j) {
      // x * inverse + 8 lies in [0, 16], so truncating after adding 0.5 rounds it.
      const int low = std::min(15, static_cast<int>(in[j] * inverse + 8.5f));
      const int high = std::min(15, static_cast<int>(in[j + kHalf] * inverse + 8.5f));
      y[b].qs[j] = static_cast<uint8_t>(low | high << 4);
    }
  }
}

void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t count) {
  constexpr int kHalf = kQK4_0 / 2;
  const int64_t blocks = count / kQK4_0;
  for (int64_t b = 0; b < blocks; ++b) {
    const float d = f16_to_f32(x[b].d);
    float* out = y + b * kQK4_0;
    for (int j = 0; j < kHalf; ++j) {
      out[j] = ((x[b].qs[j] & 0x0f) - 8) * d;
      out[j + kHalf] = ((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

}  // namespace ember::quant
