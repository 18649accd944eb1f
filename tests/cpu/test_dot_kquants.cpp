// The q4_K and q6_K tiles against q8_K activations on every ISA path this CPU runs:
// against a double-precision sum over the decoded integer codes and scales, against the
// dequantized operands, and bit for bit against themselves split into other tiles.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/dot_kquants.h"
#include "cpu/isa.h"
#include "quant/block_formats.h"
#include "quant/f16.h"
#include "quant/quantize.h"
#include "cpu/kernel_fixtures.h"
#include "test_util.h"

namespace ember::cpu {
namespace {

using quant::BlockQ4_K;
using quant::BlockQ6_K;
using quant::BlockQ8_K;
using quant::kQK_K;
using testing::SeededRng;

// Rows of floats that stress the formats: plain normal rows, rows whose sub-blocks span
// six decades, rows so small that the f16 scales go subnormal or to zero, rows whose
// scales run into the thousands (q4_K's mins into the tens of thousands, near f16's
// limit), rows of one sign (large mins), and all-zero rows.
std::vector<float> stress_rows(SeededRng& rng, int64_t rows, int64_t length) {
  std::vector<float> values(rows * length);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = values.data() + r * length;
    const std::vector<float> normal = rng.normal(length);
    const int64_t kind = rng.integer(0, 5);
    for (int64_t i = 0; i < length; ++i) {
      switch (kind) {
        case 0: row[i] = normal[i]; break;
        case 1: row[i] = normal[i] * std::pow(10.0f, static_cast<float>((i / 16 + r) % 7) - 3.0f); break;
        case 2: row[i] = normal[i] * 1e-6f; break;
        case 3: row[i] = normal[i] * 2e5f; break;
        case 4: row[i] = std::fabs(normal[i]) + 0.5f; break;
        default: row[i] = 0.0f; break;
      }
    }
  }
  return values;
}

// Rows of blocks, `stride` bytes apart.
struct QuantizedRows {
  std::vector<uint8_t> bytes;
  int64_t stride = 0;
};

QuantizedRows quantize(DType type, const std::vector<float>& values, int64_t rows, int64_t length,
                       int64_t block_bytes, int64_t padding_blocks) {
  QuantizedRows out;
  // Rows may sit further apart than their length, as the tile contract allows.
  out.stride = (length / kQK_K + padding_blocks) * block_bytes;
  out.bytes.assign(rows * out.stride, 0xa5);
  for (int64_t r = 0; r < rows; ++r)
    quant::quantize_row_reference(type, values.data() + r * length, out.bytes.data() + r * out.stride, length);
  return out;
}

// A row's weights as exact doubles decoded straight from the block fields, and the size
// of the terms each is made of (q4_K's d·sc·q and dmin·mn apart), which bounds the
// rounding error of a float sum of them.
struct DecodedRow {
  std::vector<double> value, magnitude;
};

DecodedRow decode_weights(ElementType type, const uint8_t* row, int64_t blocks) {
  DecodedRow out{std::vector<double>(blocks * kQK_K), std::vector<double>(blocks * kQK_K)};
  for (int64_t b = 0; b < blocks; ++b) {
    double* x = out.value.data() + b * kQK_K;
    double* size = out.magnitude.data() + b * kQK_K;
    if (type == ElementType::q4_k) {
      const auto& block = reinterpret_cast<const BlockQ4_K*>(row)[b];
      const double d = quant::f16_to_f32(block.d);
      const double dmin = quant::f16_to_f32(block.dmin);
      for (int s = 0; s < 8; ++s) {
        const uint8_t* sc = block.scales;
        const int scale = s < 4 ? sc[s] & 63 : (sc[s + 4] & 0x0f) | (sc[s - 4] >> 6) << 4;
        const int min = s < 4 ? sc[s + 4] & 63 : (sc[s + 4] >> 4) | (sc[s] >> 6) << 4;
        for (int i = 0; i < 32; ++i) {
          const int q = (block.qs[(s / 2) * 32 + i] >> (4 * (s % 2))) & 0x0f;
          x[s * 32 + i] = d * scale * q - dmin * min;
          size[s * 32 + i] = d * scale * q + dmin * min;
        }
      }
    } else {
      const auto& block = reinterpret_cast<const BlockQ6_K*>(row)[b];
      const double d = quant::f16_to_f32(block.d);
      for (int i = 0; i < kQK_K; ++i) {
        const int half = i / 128;
        const int l = i % 128;
        const uint8_t low_byte = block.ql[half * 64 + l % 64];
        const int low = l < 64 ? low_byte & 0x0f : low_byte >> 4;
        const int high = (block.qh[half * 32 + l % 32] >> (2 * (l / 32))) & 3;
        x[i] = d * block.scales[i / 16] * ((low | high << 4) - 32);
        size[i] = std::fabs(x[i]);
      }
    }
  }
  return out;
}

std::vector<double> decode_activations(const uint8_t* row, int64_t blocks) {
  std::vector<double> out(blocks * kQK_K);
  for (int64_t b = 0; b < blocks; ++b) {
    const auto& block = reinterpret_cast<const BlockQ8_K*>(row)[b];
    for (int i = 0; i < kQK_K; ++i) out[b * kQK_K + i] = static_cast<double>(block.d) * block.qs[i];
  }
  return out;
}

struct Problem {
  ElementType type;
  int64_t rows, cols, blocks;
  QuantizedRows weights, activations;
};

Problem make_problem(SeededRng& rng, ElementType type, int64_t rows, int64_t cols, int64_t blocks) {
  const int64_t length = blocks * kQK_K;
  Problem p{type, rows, cols, blocks, {}, {}};
  p.weights = quantize(to_dtype(type), stress_rows(rng, rows, length), rows, length, block_bytes(type),
                       rng.integer(0, 2));
  std::vector<float> x = stress_rows(rng, cols, length);
  p.activations = quantize(DType::q8_k, x, cols, length, sizeof(BlockQ8_K), rng.integer(0, 2));
  return p;
}

const uint8_t* weight_row(const Problem& p, int64_t r) { return p.weights.bytes.data() + r * p.weights.stride; }
const uint8_t* activation_row(const Problem& p, int64_t c) {
  return p.activations.bytes.data() + c * p.activations.stride;
}

// The tile of rows [r0, r0 + rows) and cols [c0, c0 + cols) written into y at its place.
void run_tile(QuantizedTile tile, const Problem& p, int64_t r0, int64_t rows, int64_t c0, int64_t cols, float* y,
              int64_t ldy) {
  tile(weight_row(p, r0), p.weights.stride, rows, activation_row(p, c0), p.activations.stride, cols, p.blocks,
       y + c0 * ldy + r0, ldy);
}

std::string describe(Isa isa, const Problem& p) {
  return std::string(isa_name(isa)) + (p.type == ElementType::q4_k ? " q4_k " : " q6_k ") + std::to_string(p.rows) +
         " rows x " + std::to_string(p.cols) + " cols x " + std::to_string(p.blocks) + " blocks";
}

// Every output against the exact sum and against the dequantized operands. The bound
// scales with Σ|w·a| (q4_K's two parts counted apart): each kernel converts exact integer
// block sums to float and adds a few float terms per block.
void expect_matches_reference(const Problem& p, const std::vector<float>& y, int64_t ldy) {
  std::vector<float> dequantized_w(p.blocks * kQK_K);
  std::vector<float> dequantized_a(p.blocks * kQK_K);
  for (int64_t c = 0; c < p.cols; ++c) {
    const std::vector<double> a = decode_activations(activation_row(p, c), p.blocks);
    quant::dequantize_row(DType::q8_k, activation_row(p, c), dequantized_a.data(), p.blocks * kQK_K);
    for (int64_t r = 0; r < p.rows; ++r) {
      const DecodedRow w = decode_weights(p.type, weight_row(p, r), p.blocks);
      quant::dequantize_row(to_dtype(p.type), weight_row(p, r), dequantized_w.data(), p.blocks * kQK_K);
      double exact = 0.0;
      double from_floats = 0.0;
      double magnitude = 0.0;
      for (int64_t i = 0; i < p.blocks * kQK_K; ++i) {
        exact += w.value[i] * a[i];
        from_floats += static_cast<double>(dequantized_w[i]) * dequantized_a[i];
        magnitude += w.magnitude[i] * std::fabs(a[i]);
      }
      const float actual = y[c * ldy + r];
      const double tolerance = 2e-7 * static_cast<double>(p.blocks + 8) * magnitude + 1e-30;
      ASSERT_LE(std::fabs(actual - exact), tolerance) << "row " << r << " col " << c << " exact " << exact;
      ASSERT_LE(std::fabs(actual - from_floats), tolerance + 1e-6 * magnitude)
          << "row " << r << " col " << c << " dequantized " << from_floats;
    }
  }
}

void expect_same_bits(const std::vector<float>& actual, const std::vector<float>& expected, int64_t rows,
                      int64_t cols, int64_t ldy, const char* what) {
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r)
      ASSERT_EQ(std::bit_cast<uint32_t>(actual[c * ldy + r]), std::bit_cast<uint32_t>(expected[c * ldy + r]))
          << what << ": row " << r << " col " << c;
}

void check_problem(Isa isa, SeededRng& rng, ElementType type, int64_t rows, int64_t cols, int64_t blocks) {
  const testing::ForcedIsa forced(isa);
  const QuantizedTile tile = kquants_tile(type, active_isa());
  ASSERT_NE(tile, nullptr);
  const Problem p = make_problem(rng, type, rows, cols, blocks);
  SCOPED_TRACE(describe(isa, p));

  const int64_t ldy = rows + rng.integer(0, 3);
  const int64_t size = cols * ldy + 4;
  std::vector<float> whole = testing::poisoned(size);
  run_tile(tile, p, 0, rows, 0, cols, whole.data(), ldy);
  for (int64_t i = 0; i < size; ++i) {
    const bool inside = i < cols * ldy && i % ldy < rows;
    ASSERT_EQ(std::isnan(whole[i]), !inside) << "y[" << i << "] " << (inside ? "not written" : "overwritten");
  }
  expect_matches_reference(p, whole, ldy);

  std::vector<float> single = testing::poisoned(size);
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) run_tile(tile, p, r, 1, c, 1, single.data(), ldy);
  expect_same_bits(single, whole, rows, cols, ldy, "1x1 tiles");

  std::vector<float> split = testing::poisoned(size);
  const int64_t row_cut = rng.integer(0, rows);
  const int64_t col_cut = rng.integer(0, cols);
  for (const auto& [r0, r1] : {std::pair{int64_t{0}, row_cut}, std::pair{row_cut, rows}})
    for (const auto& [c0, c1] : {std::pair{int64_t{0}, col_cut}, std::pair{col_cut, cols}})
      if (r1 > r0 && c1 > c0) run_tile(tile, p, r0, r1 - r0, c0, c1 - c0, split.data(), ldy);
  expect_same_bits(split, whole, rows, cols, ldy, "split tiles");
}

class DotKQuants : public ::testing::TestWithParam<ElementType> {};

TEST_P(DotKQuants, OddShapesOnEveryIsa) {
  SeededRng rng;
  for (Isa isa : supported_isas())
    for (int64_t rows : {1, 3, 5, 7, 17})
      for (int64_t cols : {1, 2, 3, 5, 9})
        for (int64_t blocks : {1, 2, 3, 7}) check_problem(isa, rng, GetParam(), rows, cols, blocks);
}

// Shapes the matmul driver uses: a decode row against many weight rows and a prefill
// tile, with lengths of real layers.
TEST_P(DotKQuants, DriverShapesOnEveryIsa) {
  SeededRng rng;
  for (Isa isa : supported_isas()) {
    check_problem(isa, rng, GetParam(), 64, 1, 16);
    check_problem(isa, rng, GetParam(), 24, 20, 11);
  }
}

TEST_P(DotKQuants, ZeroBlocksWriteZeros) {
  SeededRng rng;
  for (Isa isa : supported_isas()) {
    const testing::ForcedIsa forced(isa);
    const Problem p = make_problem(rng, GetParam(), 5, 3, 1);
    std::vector<float> y = testing::poisoned(15);
    kquants_tile(GetParam(), active_isa())(weight_row(p, 0), p.weights.stride, 5, activation_row(p, 0),
                                           p.activations.stride, 3, 0, y.data(), 5);
    for (float v : y) EXPECT_EQ(v, 0.0f) << isa_name(isa);
  }
}

INSTANTIATE_TEST_SUITE_P(KQuants, DotKQuants, ::testing::Values(ElementType::q4_k, ElementType::q6_k),
                         [](const ::testing::TestParamInfo<ElementType>& info) {
                           return info.param == ElementType::q4_k ? "q4_k" : "q6_k";
                         });

TEST(DotKQuants, OtherTypesHaveNoKernel) {
  for (ElementType type : {ElementType::f32, ElementType::f16, ElementType::q8_0, ElementType::q4_0})
    EXPECT_EQ(kquants_tile(type, detected_isa()), nullptr);
}

}  // namespace
}  // namespace ember::cpu
