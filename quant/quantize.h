// Reference quantizers and dequantizers of the GGUF block formats (quant/block_formats.h).
//
// The reference quantizers reproduce ggml's quantize_row_*_ref bit for bit: the same
// choice of scale, the same order of float operations and the same rounding (roundf in
// q8_0, truncation of x + 0.5 in q4_0/q4_1, round-half-even everywhere else), so a file we
// write holds exactly the bytes llama.cpp would write from the same floats. They are the
// definition the fast kernels of cpu/quantize.h are tested against. Every file that
// evaluates these float expressions turns FMA contraction off (GCC contracts by default
// in C++ when the target has FMA, and a fused multiply-add rounds differently).
#pragma once

#include <cstdint>
#include <cstring>

#include "ember/dtype.h"
#include "quant/block_formats.h"

namespace ember::quant {

// Any type that can hold floats: plain conversion for f32/f16/bf16, block formats
// otherwise; i32 holds no quantized floats.
bool can_quantize_to(DType type);

// `count` elements of x into blocks of `type`; count is a multiple of block_elements(type)
// and can_quantize_to(type) holds.
void quantize_row_reference(DType type, const float* x, void* blocks, int64_t count);

// `count` elements of `type` widened to float; i32 converts each integer.
void dequantize_row(DType type, const void* blocks, float* y, int64_t count);

// ggml's nearest_int: adding 1.5 * 2^23 leaves the integer part in the low mantissa bits,
// which rounds half to even (the current rounding mode) without a library call. Exact for
// |value| < 2^22, the range every caller stays in.
inline int nearest_int(float value) {
  const float shifted = value + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  return (bits & 0x007fffff) - 0x00400000;
}

// q8_0's codes of one 32-element block (q8_1 shares them); returns the f32 scale d.
float quantize_codes_q8(const float* x, int8_t* qs);
void quantize_row_q8_0_reference(const float* x, BlockQ8_0* y, int64_t count);
void quantize_row_q8_1_reference(const float* x, BlockQ8_1* y, int64_t count);
void quantize_row_q4_0_reference(const float* x, BlockQ4_0* y, int64_t count);
void quantize_row_q4_1_reference(const float* x, BlockQ4_1* y, int64_t count);
void quantize_row_q4_k_reference(const float* x, BlockQ4_K* y, int64_t count);
// Stores sub-block `sub_block`'s 6-bit scale and min codes into a q4_K scales array.
// Sub-blocks must be packed in order: 4-7 reuse the top bits of the bytes 0-3 wrote.
void pack_q4_k_scale_min(uint8_t* scales, int sub_block, uint8_t scale, uint8_t min);
void quantize_row_q6_k_reference(const float* x, BlockQ6_K* y, int64_t count);
void quantize_row_q8_k_reference(const float* x, BlockQ8_K* y, int64_t count);

// One 32-element block of q8_0 or q8_1 codes times the f16 scale d.
void dequantize_codes_q8(uint16_t d, const int8_t* qs, float* y);
void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t count);
void dequantize_row_q8_1(const BlockQ8_1* x, float* y, int64_t count);
void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t count);
void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t count);
void dequantize_row_q4_k(const BlockQ4_K* x, float* y, int64_t count);
void dequantize_row_q6_k(const BlockQ6_K* x, float* y, int64_t count);
void dequantize_row_q8_k(const BlockQ8_K* x, float* y, int64_t count);

}  // namespace ember::quant
