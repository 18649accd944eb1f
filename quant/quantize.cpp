#include "quant/quantize.h"

#include <cassert>
#include <cstring>

#include "quant/convert.h"

namespace ember::quant {

bool can_quantize_to(DType type) { return type != DType::i32; }

void quantize_row_reference(DType type, const float* x, void* blocks, int64_t count) {
  assert(can_quantize_to(type));
  assert(count % block_elements(type) == 0);
  switch (type) {
    case DType::f32: std::memcpy(blocks, x, static_cast<size_t>(count) * sizeof(float)); break;
    case DType::f16: f32_to_f16_row(x, static_cast<uint16_t*>(blocks), count); break;
    case DType::bf16: f32_to_bf16_row(x, static_cast<uint16_t*>(blocks), count); break;
    case DType::q8_0: quantize_row_q8_0_reference(x, static_cast<BlockQ8_0*>(blocks), count); break;
    case DType::q4_0: quantize_row_q4_0_reference(x, static_cast<BlockQ4_0*>(blocks), count); break;
    case DType::q4_1: quantize_row_q4_1_reference(x, static_cast<BlockQ4_1*>(blocks), count); break;
    case DType::q4_k: quantize_row_q4_k_reference(x, static_cast<BlockQ4_K*>(blocks), count); break;
    case DType::q6_k: quantize_row_q6_k_reference(x, static_cast<BlockQ6_K*>(blocks), count); break;
    case DType::q8_k: quantize_row_q8_k_reference(x, static_cast<BlockQ8_K*>(blocks), count); break;
    case DType::q8_1: quantize_row_q8_1_reference(x, static_cast<BlockQ8_1*>(blocks), count); break;
    case DType::i32: break;
  }
}

void dequantize_row(DType type, const void* blocks, float* y, int64_t count) {
  assert(count % block_elements(type) == 0);
  switch (type) {
    case DType::f32: std::memcpy(y, blocks, static_cast<size_t>(count) * sizeof(float)); break;
    case DType::f16: f16_to_f32_row(static_cast<const uint16_t*>(blocks), y, count); break;
    case DType::bf16: bf16_to_f32_row(static_cast<const uint16_t*>(blocks), y, count); break;
    case DType::i32: {
      const auto* values = static_cast<const int32_t*>(blocks);
      for (int64_t i = 0; i < count; ++i) y[i] = static_cast<float>(values[i]);
      break;
    }
    case DType::q8_0: dequantize_row_q8_0(static_cast<const BlockQ8_0*>(blocks), y, count); break;
    case DType::q4_0: dequantize_row_q4_0(static_cast<const BlockQ4_0*>(blocks), y, count); break;
    case DType::q4_1: dequantize_row_q4_1(static_cast<const BlockQ4_1*>(blocks), y, count); break;
    case DType::q4_k: dequantize_row_q4_k(static_cast<const BlockQ4_K*>(blocks), y, count); break;
    case DType::q6_k: dequantize_row_q6_k(static_cast<const BlockQ6_K*>(blocks), y, count); break;
    case DType::q8_k: dequantize_row_q8_k(static_cast<const BlockQ8_K*>(blocks), y, count); break;
    case DType::q8_1: dequantize_row_q8_1(static_cast<const BlockQ8_1*>(blocks), y, count); break;
  }
}

}  // namespace ember::quant
