// The 32-element block dot-product tiles (q8_0 and q4_0 against q8_0, q4_1 against q8_1)
// on every ISA this machine runs: against a double-precision sum over the blocks' integer
// codes, against dequantized floats, with odd shapes and strides, untouched memory around
// the tile, and the same bits on every ISA and however the outputs are split into tiles.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu/dot_blocks32.h"
#include "cpu/isa.h"
#include "cpu/quantized_dot.h"
#include "quant/block_formats.h"
#include "quant/f16.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace ember::cpu {
namespace {

using quant::f16_to_f32;

constexpr ElementType kTypes[] = {ElementType::q8_0, ElementType::q4_0, ElementType::q4_1};

// Weight and activation rows quantized by quant's reference, rows `stride` bytes apart
// (a row's blocks plus a gap, so a kernel that assumed packed rows would read the gap).
struct Operands {
  ElementType type;
  int64_t rows, cols, blocks;
  int64_t w_stride, a_stride;
  std::vector<float> w_floats, a_floats;
  std::vector<unsigned char> w, a;
};

std::vector<unsigned char> quantize_strided(DType type, const std::vector<float>& x, int64_t rows, int64_t length,
                                            int64_t stride) {
  std::vector<unsigned char> out(static_cast<size_t>(rows * stride), 0xAB);
  for (int64_t r = 0; r < rows; ++r)
    quant::quantize_row_reference(type, x.data() + r * length, out.data() + r * stride, length);
  return out;
}

Operands make_operands(testing::SeededRng& rng, ElementType type, int64_t rows, int64_t cols, int64_t blocks) {
  Operands ops{type, rows, cols, blocks, 0, 0, {}, {}, {}, {}};
  const int64_t length = blocks * 32;
  const DType activation = activation_dtype(type);
  // Gaps of whole 2-byte steps: the rows of a GGUF tensor keep their blocks' f16 fields
  // aligned, and a misaligned field would be undefined behaviour in the reference itself.
  ops.w_stride = element_row_bytes(type, length) + rng.integer(0, 2) * 6;
  ops.a_stride = row_bytes(activation, length) + rng.integer(0, 2) * 4;
  ops.w_floats = rng.normal(static_cast<size_t>(rows * length));
  ops.a_floats = rng.normal(static_cast<size_t>(cols * length));
  // q4_1's min term matters only when a block's values sit off zero.
  for (size_t i = 0; i < ops.w_floats.size(); i += 32) {
    const float offset = static_cast<float>(rng.integer(-2, 2));
    for (size_t k = i; k < i + 32; ++k) ops.w_floats[k] += offset;
  }
  ops.w = quantize_strided(to_dtype(type), ops.w_floats, rows, length, ops.w_stride);
  ops.a = quantize_strided(activation, ops.a_floats, cols, length, ops.a_stride);
  return ops;
}

// Weight code i (0..31) of a block and its additive offset, for each weight format.
struct DecodedBlock {
  double scale;
  double min;  // q4_1's m; 0 otherwise
  int codes[32];
};

DecodedBlock decode_weight(ElementType type, const unsigned char* block) {
  DecodedBlock out{};
  if (type == ElementType::q8_0) {
    const auto& b = *reinterpret_cast<const quant::BlockQ8_0*>(block);
    out.scale = f16_to_f32(b.d);
    for (int i = 0; i < 32; ++i) out.codes[i] = b.qs[i];
    return out;
  }
  const uint8_t* nibbles;
  int bias;
  if (type == ElementType::q4_0) {
    const auto& b = *reinterpret_cast<const quant::BlockQ4_0*>(block);
    out.scale = f16_to_f32(b.d);
    nibbles = b.qs;
    bias = 8;
  } else {
    const auto& b = *reinterpret_cast<const quant::BlockQ4_1*>(block);
    out.scale = f16_to_f32(b.d);
    out.min = f16_to_f32(b.m);
    nibbles = b.qs;
    bias = 0;
  }
  for (int j = 0; j < 16; ++j) {
    out.codes[j] = (nibbles[j] & 0x0f) - bias;
    out.codes[j + 16] = (nibbles[j] >> 4) - bias;
  }
  return out;
}

// Σ_b d_w d_a Σ q_w q_a (+ m_w s_a for q4_1) in double, and the same sum over the
// products' magnitudes: kernels sum partial dot products (lanes of a vector) in float, so
// their rounding scales with that, not with the possibly cancelling total.
struct Expected {
  double value;
  double magnitude;
};

Expected expected_dot(const Operands& ops, int64_t r, int64_t c) {
  const int64_t w_block = block_bytes(ops.type);
  const int64_t a_block = row_bytes(activation_dtype(ops.type), 32);
  Expected out{0.0, 0.0};
  for (int64_t b = 0; b < ops.blocks; ++b) {
    const DecodedBlock w = decode_weight(ops.type, ops.w.data() + r * ops.w_stride + b * w_block);
    const unsigned char* a_bytes = ops.a.data() + c * ops.a_stride + b * a_block;
    double a_scale;
    double a_sum = 0.0;
    const int8_t* a_codes;
    if (ops.type == ElementType::q4_1) {
      const auto& a = *reinterpret_cast<const quant::BlockQ8_1*>(a_bytes);
      a_scale = f16_to_f32(a.d);
      a_sum = f16_to_f32(a.s);
      a_codes = a.qs;
    } else {
      const auto& a = *reinterpret_cast<const quant::BlockQ8_0*>(a_bytes);
      a_scale = f16_to_f32(a.d);
      a_codes = a.qs;
    }
    int64_t dot = 0;
    int64_t magnitude = 0;
    for (int i = 0; i < 32; ++i) {
      dot += static_cast<int64_t>(w.codes[i]) * a_codes[i];
      magnitude += std::abs(w.codes[i] * a_codes[i]);
    }
    const double scale = w.scale * a_scale;
    const double min_term = w.min * a_sum;
    out.value += scale * static_cast<double>(dot) + min_term;
    out.magnitude += std::fabs(scale) * static_cast<double>(magnitude) + std::fabs(min_term);
  }
  return out;
}

// Output (r, c) at y[c * ldy + r]; ldy leaves a poisoned gap after each column's rows.
struct Output {
  int64_t ldy;
  std::vector<float> y;
  float at(int64_t r, int64_t c) const { return y[static_cast<size_t>(c * ldy + r)]; }
};

Output run_tile(QuantizedTile tile, const Operands& ops, int64_t r0, int64_t rows, int64_t c0, int64_t cols,
                Output out) {
  tile(ops.w.data() + r0 * ops.w_stride, ops.w_stride, rows, ops.a.data() + c0 * ops.a_stride, ops.a_stride, cols,
       ops.blocks, out.y.data() + c0 * out.ldy + r0, out.ldy);
  return out;
}

Output poisoned_output(const Operands& ops) {
  const int64_t ldy = ops.rows + 3;
  return Output{ldy, testing::poisoned(static_cast<size_t>(ops.cols * ldy + 5))};
}

Output whole_tile(QuantizedTile tile, const Operands& ops) {
  return run_tile(tile, ops, 0, ops.rows, 0, ops.cols, poisoned_output(ops));
}

constexpr int64_t kRows[] = {1, 3, 5, 7, 17};
constexpr int64_t kCols[] = {1, 2, 3, 5, 9};
constexpr int64_t kBlocks[] = {1, 3, 7, 33};

std::string label(ElementType type, Isa isa, int64_t rows, int64_t cols, int64_t blocks) {
  return std::string(dtype_name(to_dtype(type))) + " " + std::string(isa_name(isa)) + " rows " + std::to_string(rows) +
         " cols " + std::to_string(cols) + " blocks " + std::to_string(blocks);
}

TEST(DotBlocks32, OnlyTheBlockTypesHaveTiles) {
  for (Isa isa : supported_isas()) {
    for (ElementType type : kTypes) EXPECT_NE(blocks32_tile(type, isa), nullptr) << isa_name(isa);
    for (ElementType type : {ElementType::f32, ElementType::f16, ElementType::q4_k, ElementType::q6_k})
      EXPECT_EQ(blocks32_tile(type, isa), nullptr) << isa_name(isa);
  }
}

TEST(DotBlocks32, MatchesTheIntegerCodeSumInDoubleAndLeavesTheGapsPoisoned) {
  testing::SeededRng rng;
  for (ElementType type : kTypes)
    for (int64_t rows : kRows)
      for (int64_t cols : kCols)
        for (int64_t blocks : kBlocks) {
          const Operands ops = make_operands(rng, type, rows, cols, blocks);
          for (Isa isa : supported_isas()) {
            const std::string where = label(type, isa, rows, cols, blocks);
            const Output out = whole_tile(blocks32_tile(type, isa), ops);
            for (int64_t c = 0; c < cols; ++c) {
              for (int64_t r = 0; r < rows; ++r) {
                const Expected expected = expected_dot(ops, r, c);
                // Float rounding of each block's scale product and of the running sums:
                // a few dozen ulps of the summed magnitudes at most.
                ASSERT_NEAR(out.at(r, c), expected.value, 2e-6 * expected.magnitude + 1e-30)
                    << where << " at r " << r << " c " << c;
              }
              for (int64_t r = rows; r < out.ldy && c * out.ldy + r < static_cast<int64_t>(out.y.size()); ++r)
                ASSERT_TRUE(std::isnan(out.at(r, c))) << where << " wrote past row " << rows << " in column " << c;
            }
            for (size_t i = static_cast<size_t>(cols * out.ldy); i < out.y.size(); ++i)
              ASSERT_TRUE(std::isnan(out.y[i])) << where << " wrote past the last column";
          }
        }
}

TEST(DotBlocks32, EqualsDequantizedWeightsTimesDequantizedActivations) {
  testing::SeededRng rng;
  for (ElementType type : kTypes) {
    const int64_t rows = 6, cols = 5, blocks = 24, length = blocks * 32;
    const Operands ops = make_operands(rng, type, rows, cols, blocks);
    std::vector<float> w(static_cast<size_t>(rows * length)), a(static_cast<size_t>(cols * length));
    for (int64_t r = 0; r < rows; ++r)
      quant::dequantize_row(to_dtype(type), ops.w.data() + r * ops.w_stride, w.data() + r * length, length);
    for (int64_t c = 0; c < cols; ++c)
      quant::dequantize_row(activation_dtype(type), ops.a.data() + c * ops.a_stride, a.data() + c * length, length);
    for (Isa isa : supported_isas()) {
      const Output out = whole_tile(blocks32_tile(type, isa), ops);
      for (int64_t c = 0; c < cols; ++c)
        for (int64_t r = 0; r < rows; ++r) {
          double sum = 0.0, magnitude = 0.0, min_error = 0.0;
          for (int64_t i = 0; i < length; ++i) {
            const double product = static_cast<double>(w[r * length + i]) * a[c * length + i];
            sum += product;
            magnitude += std::fabs(product);
          }
          if (type == ElementType::q4_1) {
            // The kernel takes d_a Σ a from q8_1's s, rounded to f16 (2^-11 relative), and
            // dequantized q4_1 weights d q + m are rounded to f32.
            for (int64_t b = 0; b < blocks; ++b) {
              const auto& wb = reinterpret_cast<const quant::BlockQ4_1*>(ops.w.data() + r * ops.w_stride)[b];
              const auto& ab = reinterpret_cast<const quant::BlockQ8_1*>(ops.a.data() + c * ops.a_stride)[b];
              double a_sum = 0.0;
              for (int i = 0; i < 32; ++i) a_sum += ab.qs[i];
              min_error += std::fabs(f16_to_f32(wb.m)) * std::fabs(f16_to_f32(ab.d) * a_sum) * (1.0 / 2048.0);
            }
            magnitude *= 1.0 + 1e-6;
          }
          ASSERT_NEAR(out.at(r, c), sum, 2e-6 * magnitude + min_error + 1e-30)
              << label(type, isa, rows, cols, blocks) << " at r " << r << " c " << c;
        }
    }
  }
}

TEST(DotBlocks32, EveryIsaAndEverySplitIntoTilesGiveTheSameBits) {
  testing::SeededRng rng;
  for (ElementType type : kTypes)
    for (int64_t blocks : {1, 2, 7, 33}) {
      const int64_t rows = 17, cols = 11;
      const Operands ops = make_operands(rng, type, rows, cols, blocks);
      const Output scalar = whole_tile(blocks32_tile(type, Isa::scalar), ops);
      for (Isa isa : supported_isas()) {
        const QuantizedTile tile = blocks32_tile(type, isa);
        const Output whole = whole_tile(tile, ops);
        ASSERT_EQ(std::memcmp(whole.y.data(), scalar.y.data(), whole.y.size() * sizeof(float)), 0)
            << label(type, isa, rows, cols, blocks) << " differs from the scalar kernel";
        Output singles = poisoned_output(ops);
        for (int64_t c = 0; c < cols; ++c)
          for (int64_t r = 0; r < rows; ++r) singles = run_tile(tile, ops, r, 1, c, 1, std::move(singles));
        Output split = poisoned_output(ops);
        const int64_t row_cut = rng.integer(1, rows - 1);
        const int64_t col_cut = rng.integer(1, cols - 1);
        split = run_tile(tile, ops, 0, row_cut, 0, col_cut, std::move(split));
        split = run_tile(tile, ops, row_cut, rows - row_cut, 0, col_cut, std::move(split));
        split = run_tile(tile, ops, 0, row_cut, col_cut, cols - col_cut, std::move(split));
        split = run_tile(tile, ops, row_cut, rows - row_cut, col_cut, cols - col_cut, std::move(split));
        const std::string where = label(type, isa, rows, cols, blocks) + " cut at row " + std::to_string(row_cut) +
                                  " col " + std::to_string(col_cut);
        for (int64_t c = 0; c < cols; ++c)
          for (int64_t r = 0; r < rows; ++r) {
            const float expected = whole.at(r, c);
            ASSERT_EQ(std::memcmp(&expected, &singles.y[c * whole.ldy + r], sizeof(float)), 0)
                << where << " 1x1 tile at r " << r << " c " << c;
            ASSERT_EQ(std::memcmp(&expected, &split.y[c * whole.ldy + r], sizeof(float)), 0)
                << where << " split tile at r " << r << " c " << c;
          }
      }
    }
}

}  // namespace
}  // namespace ember::cpu
