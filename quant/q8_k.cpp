#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/quantize.h"

namespace ember::quant {

void quantize_row_q8_k_reference(const float* x, BlockQ8_K* y, int64_t count) {
  constexpr int kGroup = 16;
  const int64_t blocks = count / kQK_K;
  for (int64_t b = 0; b < blocks; ++b) {
    const float* in = x + b * kQK_K;
    float amax = 0.0f;
    float extreme = 0.0f;
    for (int i = 0; i < kQK_K; ++i) {
      if (std::fabs(in[i]) > amax) {
        amax = std::fabs(in[i]);
        extreme = in[i];
      }
    }
    if (amax == 0.0f) {
      // ggml leaves bsums unwritten here; zeros keep our output deterministic and are
      // what the (zero) codes sum to anyway.
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    // -127 rather than -128, as in ggml: symmetric codes keep the sign tricks of the
    // x86 int8 dot products (sign_epi8 of -128 overflows) valid.
    const float inverse = -127.0f / extreme;
    for (int i = 0; i < kQK_K; ++i) y[b].qs[i] = static_cast<int8_t>(std::min(127, nearest_int(inverse * in[i])));
    for (int g = 0; g < kQK_K / kGroup; ++g) {
      int sum = 0;
      for (int i = 0; i < kGroup; ++i) sum += y[b].qs[g * kGroup + i];
      y[b].bsums[g] = static_cast<int16_t>(sum);
    }
    y[b].d = 1.0f / inverse;
  }
}

void dequantize_row_q8_k(const BlockQ8_K* x, float* y, int64_t count) {
  const int64_t blocks = count / kQK_K;
  for (int64_t b = 0; b < blocks; ++b)
    for (int i = 0; i < kQK_K; ++i) y[b * kQK_K + i] = x[b].d * x[b].qs[i];
}

}  // namespace ember::quant
