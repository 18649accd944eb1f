#include "cpu/dot_blocks32.h"

#include <cmath>
#include <cstdint>

#include "quant/block_formats.h"
#include "quant/f16.h"

namespace ember::cpu {
namespace {

using quant::BlockQ4_0;
using quant::BlockQ4_1;
using quant::BlockQ8_0;
using quant::BlockQ8_1;
using quant::f16_to_f32;

constexpr int kHalf = 16;  // q4 byte j holds weights j and j + 16

// One block's contribution, in the order every ISA level keeps (their integer sums are
// exact however they split them), so all levels give the same bits:
//   acc = fma(float(Σ q_w q_a), d_w · d_a, acc)
float add_block(float acc, const BlockQ8_0& w, const BlockQ8_0& a) {
  int32_t sum = 0;
  for (int i = 0; i < quant::kQK8_0; ++i) sum += w.qs[i] * a.qs[i];
  return std::fma(static_cast<float>(sum), f16_to_f32(w.d) * f16_to_f32(a.d), acc);
}

float add_block(float acc, const BlockQ4_0& w, const BlockQ8_0& a) {
  int32_t sum = 0;
  for (int j = 0; j < kHalf; ++j) sum += ((w.qs[j] & 0x0f) - 8) * a.qs[j] + ((w.qs[j] >> 4) - 8) * a.qs[j + kHalf];
  return std::fma(static_cast<float>(sum), f16_to_f32(w.d) * f16_to_f32(a.d), acc);
}

// x_w = d_w q + m_w and x_a = d_a a give Σ x_w x_a = d_w d_a Σ q a + m_w (d_a Σ a), the
// last factor being q8_1's s: a second fma.
float add_block(float acc, const BlockQ4_1& w, const BlockQ8_1& a) {
  int32_t sum = 0;
  for (int j = 0; j < kHalf; ++j) sum += (w.qs[j] & 0x0f) * a.qs[j] + (w.qs[j] >> 4) * a.qs[j + kHalf];
  acc = std::fma(static_cast<float>(sum), f16_to_f32(w.d) * f16_to_f32(a.d), acc);
  return std::fma(f16_to_f32(w.m), f16_to_f32(a.s), acc);
}

template <class WeightBlock, class ActivationBlock>
void tile_scalar(const void* w, int64_t w_stride, int64_t rows, const void* a, int64_t a_stride, int64_t cols,
                 int64_t blocks, float* y, int64_t ldy) {
  for (int64_t c = 0; c < cols; ++c) {
    const auto* activation = reinterpret_cast<const ActivationBlock*>(static_cast<const char*>(a) + c * a_stride);
    for (int64_t r = 0; r < rows; ++r) {
      const auto* weight = reinterpret_cast<const WeightBlock*>(static_cast<const char*>(w) + r * w_stride);
      float sum = 0.0f;
      for (int64_t b = 0; b < blocks; ++b) sum = add_block(sum, weight[b], activation[b]);
      y[c * ldy + r] = sum;
    }
  }
}

QuantizedTile scalar_tile(ElementType weight_type) {
  switch (weight_type) {
    case ElementType::q8_0: return tile_scalar<BlockQ8_0, BlockQ8_0>;
    case ElementType::q4_0: return tile_scalar<BlockQ4_0, BlockQ8_0>;
    case ElementType::q4_1: return tile_scalar<BlockQ4_1, BlockQ8_1>;
    default: return nullptr;
  }
}

}  // namespace

QuantizedTile blocks32_tile(ElementType weight_type, Isa isa) {
  switch (isa) {
    case Isa::avx512_bf16:
    case Isa::avx512_vnni: return x86::blocks32_tile_avx512vnni(weight_type);
    case Isa::avx_vnni: return x86::blocks32_tile_avxvnni(weight_type);
    case Isa::avx512:
    case Isa::avx2: return x86::blocks32_tile_avx2(weight_type);
    case Isa::scalar: return scalar_tile(weight_type);
  }
  return scalar_tile(weight_type);
}

}  // namespace ember::cpu
