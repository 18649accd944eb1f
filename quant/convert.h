// Bulk conversion between float and the 16-bit float formats. These are the row
// converters that matmul uses to widen weight panels and that tensors use for casts.
#pragma once

#include <cstdint>

namespace ember::quant {

void f16_to_f32_row(const uint16_t* in, float* out, int64_t count);
void f32_to_f16_row(const float* in, uint16_t* out, int64_t count);
void bf16_to_f32_row(const uint16_t* in, float* out, int64_t count);
void f32_to_bf16_row(const float* in, uint16_t* out, int64_t count);

}  // namespace ember::quant
