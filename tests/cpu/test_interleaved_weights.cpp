// The interleaved weight layout (cpu/interleaved_weights.h): every ISA's tile over it gives
// the same bits as the plain layout's plain C++ tile, for row counts on and off the 16-row
// groups, tiles that start at a later group, poisoned padding and output gaps;
// quantized_matmul gives those bits through the layout on any thread count.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/interleaved_weights.h"
#include "cpu/isa.h"
#include "cpu/kernel_fixtures.h"
#include "cpu/matmul.h"
#include "cpu/quantized_dot.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace ember::cpu {
namespace {

using testing::SeededRng;

constexpr ElementType kTypes[] = {ElementType::q8_0, ElementType::q4_0, ElementType::q4_k, ElementType::q6_k};

std::string name(ElementType type) { return std::string(dtype_name(to_dtype(type))); }

std::vector<unsigned char> quantized(DType type, const std::vector<float>& values, int64_t rows, int64_t length) {
  std::vector<unsigned char> out(static_cast<size_t>(row_bytes(type, length) * rows));
  quant::quantize_row_reference(type, values.data(), out.data(), rows * length);
  return out;
}

// Plain weight rows and their interleaved form; the form's bytes start poisoned, so a
// record interleave_rows skips (the padding rows of the last group included) shows.
struct Layouts {
  ElementType type;
  int64_t rows, blocks;
  std::vector<unsigned char> plain, interleaved;
};

Layouts make_layouts(SeededRng& rng, ElementType type, int64_t rows, int64_t blocks) {
  Layouts out{type, rows, blocks, {}, {}};
  const int64_t length = blocks * block_elements(type);
  out.plain = quantized(to_dtype(type), rng.normal(static_cast<size_t>(rows * length)), rows, length);
  out.interleaved.assign(static_cast<size_t>(interleaved_bytes(type, rows, length)), 0xAB);
  interleave_rows(type, out.plain.data(), rows, length, out.interleaved.data());
  return out;
}

// y for `rows` weight rows from `first_row` (a multiple of 16) against cols activation
// rows, ldy = rows + 3 so each column leaves a poisoned gap.
std::vector<float> run(QuantizedTile tile, const unsigned char* weights, int64_t first_row, int64_t rows,
                       const Layouts& w, const std::vector<unsigned char>& a, int64_t cols) {
  const int64_t length = w.blocks * block_elements(w.type);
  const int64_t w_stride = element_row_bytes(w.type, length);
  const int64_t a_stride = row_bytes(activation_dtype(w.type), length);
  std::vector<float> y = testing::poisoned(static_cast<size_t>(cols * (rows + 3)));
  tile(weights + first_row * w_stride, w_stride, rows, a.data(), a_stride, cols, w.blocks, y.data(), rows + 3);
  return y;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(InterleavedWeights, TakeThePlainRowsBytesRoundedUpToWholeGroups) {
  for (ElementType type : kTypes) {
    const int64_t length = 2 * block_elements(type);
    const int64_t row = element_row_bytes(type, length);
    EXPECT_EQ(interleaved_bytes(type, 16, length), 16 * row) << name(type);
    EXPECT_EQ(interleaved_bytes(type, 17, length), 32 * row) << name(type);
    EXPECT_EQ(interleaved_bytes(type, 1, length), 16 * row) << name(type);
  }
}

TEST(InterleavedWeights, PairedRecordsHoldBothBodiesThenBothHalves) {
  EXPECT_TRUE(pairs_records(ElementType::q8_0));
  for (ElementType type : {ElementType::q4_0, ElementType::q4_k, ElementType::q6_k}) EXPECT_FALSE(pairs_records(type));
  // q8_0's records: a 512-byte body, 32 bytes of halves.
  EXPECT_EQ(record_place(0, 4, 512, 32, true).body, 0);
  EXPECT_EQ(record_place(1, 4, 512, 32, true).body, 512);
  EXPECT_EQ(record_place(0, 4, 512, 32, true).halves, 1024);
  EXPECT_EQ(record_place(1, 4, 512, 32, true).halves, 1056);
  EXPECT_EQ(record_place(2, 4, 512, 32, true).body, 1088);
  EXPECT_EQ(record_place(3, 4, 512, 32, true).halves, 2144);
  // A last odd block is a pair of one: its halves follow its own body.
  EXPECT_EQ(record_place(2, 3, 512, 32, true).body, 1088);
  EXPECT_EQ(record_place(2, 3, 512, 32, true).halves, 1600);
  // With an even block count every body and every pair's halves start on a cache line.
  for (int64_t b = 0; b < 8; ++b) {
    EXPECT_EQ(record_place(b, 8, 512, 32, true).body % 64, 0) << b;
    EXPECT_EQ(record_place(b - b % 2, 8, 512, 32, true).halves % 64, 0) << b;
  }
  // Single records: one after another, each body then its halves.
  EXPECT_EQ(record_place(1, 4, 256, 32, false).body, 288);
  EXPECT_EQ(record_place(1, 4, 256, 32, false).halves, 544);
}

TEST(InterleavedWeights, PayOnlyWhereTheVnni512KernelReadsThem) {
  for (ElementType type : kTypes) {
    for (Isa isa : {Isa::avx512_vnni, Isa::avx512_bf16}) EXPECT_TRUE(interleaving_pays(type, isa)) << name(type);
    for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx_vnni, Isa::avx512}) EXPECT_FALSE(interleaving_pays(type, isa));
  }
  for (ElementType type : {ElementType::q4_1, ElementType::f16})
    EXPECT_FALSE(interleaving_pays(type, Isa::avx512_vnni)) << name(type);
}

TEST(InterleavedWeights, EveryIsaTileGivesThePlainTilesBits) {
  SeededRng rng;
  for (ElementType type : kTypes)
    for (int64_t rows : {1, 5, 15, 16, 17, 40})
      for (int64_t blocks : {1, 2, 3, 33})
        for (int64_t cols : {1, 2, 3, 4, 5, 9, 17}) {
          const Layouts w = make_layouts(rng, type, rows, blocks);
          const int64_t length = blocks * block_elements(type);
          const auto a = quantized(activation_dtype(type), rng.normal(static_cast<size_t>(cols * length)), cols, length);
          const auto expected = run(quantized_tile(type, Isa::scalar), w.plain.data(), 0, rows, w, a, cols);
          for (Isa isa : supported_isas()) {
            SCOPED_TRACE(name(type) + " " + std::string(isa_name(isa)) + " rows " + std::to_string(rows) + " blocks " +
                         std::to_string(blocks) + " cols " + std::to_string(cols));
            ASSERT_TRUE(same_bits(run(interleaved_tile(type, isa), w.interleaved.data(), 0, rows, w, a, cols), expected));
            // A tile of the rows from the second group on addresses that group alone.
            if (rows > 16) {
              const auto tail = run(interleaved_tile(type, isa), w.interleaved.data(), 16, rows - 16, w, a, cols);
              const auto plain_tail = run(quantized_tile(type, Isa::scalar), w.plain.data(), 16, rows - 16, w, a, cols);
              ASSERT_TRUE(same_bits(tail, plain_tail));
            }
          }
        }
}

TEST(InterleavedWeights, QuantizedMatmulGivesThePlainCppBitsOnAnyThreadCount) {
  SeededRng rng;
  for (ElementType type : kTypes)
    for (int64_t rows : {1, 3, 37}) {
      const int64_t in = 3 * block_elements(type), out = 45;
      const Layouts w = make_layouts(rng, type, out, 3);
      const std::vector<float> x = rng.normal(static_cast<size_t>(rows * in));
      std::vector<float> plain = testing::poisoned(static_cast<size_t>(rows * out));
      {
        const testing::ForcedIsa plain_cpp(Isa::scalar);
        quantized_matmul(x.data(), rows, in, w.plain.data(), type, plain.data(), out);
      }
      for (int threads : {1, 2, 3}) {
        testing::ThreadCount scope(threads);
        std::vector<float> interleaved = testing::poisoned(static_cast<size_t>(rows * out));
        quantized_matmul(x.data(), rows, in, w.interleaved.data(), type, interleaved.data(), out,
                         WeightLayout::interleaved);
        EXPECT_TRUE(same_bits(interleaved, plain)) << name(type) << " rows " << rows << " threads " << threads;
      }
    }
}

}  // namespace
}  // namespace ember::cpu
