#include "quant/f16.h"
#include "quant/quantize.h"

namespace ember::quant {

void quantize_row_q8_1_reference(const float* x, BlockQ8_1* y, int64_t count) {
  const int64_t blocks = count / kQK8_1;
  for (int64_t b = 0; b < blocks; ++b) {
    const float d = quantize_codes_q8(x + b * kQK8_1, y[b].qs);
    int sum = 0;
    for (int i = 0; i < kQK8_1; ++i) sum += y[b].qs[i];
    y[b].d = f32_to_f16(d);
    y[b].s = f32_to_f16(static_cast<float>(sum) * d);
  }
}

void dequantize_row_q8_1(const BlockQ8_1* x, float* y, int64_t count) {
  for (int64_t b = 0; b < count / kQK8_1; ++b) dequantize_codes_q8(x[b].d, x[b].qs, y + b * kQK8_1);
}

}  // namespace ember::quant
