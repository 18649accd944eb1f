#include "cpu/embedding.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "quant/bf16.h"
#include "quant/f16.h"
#include "test_util.h"

namespace ember::cpu {
namespace {

using testing::poisoned;
using testing::SeededRng;

// Float bit patterns, so that NaN entries compare equal to themselves.
std::vector<uint32_t> bits_of(const std::vector<float>& values) {
  std::vector<uint32_t> bits;
  for (float v : values) bits.push_back(std::bit_cast<uint32_t>(v));
  return bits;
}

// Random ids, with the first and last table rows always among them.
std::vector<int32_t> random_ids(SeededRng& rng, int64_t count, int64_t table_rows) {
  std::vector<int32_t> ids(count);
  for (int32_t& id : ids) id = static_cast<int32_t>(rng.integer(0, table_rows - 1));
  ids.front() = 0;
  ids.back() = static_cast<int32_t>(table_rows - 1);
  return ids;
}

// Table values with the awkward cases of a 16-bit format mixed in.
std::vector<float> table_values(SeededRng& rng, int64_t count) {
  std::vector<float> values = rng.normal(count, 4.0f);
  const float specials[] = {0.0f, -0.0f, 65504.0f, 1e-6f, -3e-7f, 1e30f,
                            std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
  for (size_t i = 0; i < std::size(specials) && i < values.size(); ++i) values[i * 7 % values.size()] = specials[i];
  return values;
}

struct Shape {
  int64_t table_rows, cols, count;
};
constexpr Shape kShapes[] = {{1, 1, 1}, {7, 3, 5}, {37, 129, 1001}, {1003, 37, 3}};

TEST(Embedding, GathersF32Rows) {
  SeededRng rng;
  for (const Shape& s : kShapes) {
    const std::vector<float> table = table_values(rng, s.table_rows * s.cols);
    const std::vector<int32_t> ids = random_ids(rng, s.count, s.table_rows);
    std::vector<float> expected;
    for (int32_t id : ids) {
      expected.insert(expected.end(), table.begin() + id * s.cols, table.begin() + (id + 1) * s.cols);
    }
    std::vector<float> out = poisoned(s.count * s.cols);
    embedding(table.data(), ElementType::f32, s.cols, ids.data(), s.count, out.data());
    EXPECT_EQ(bits_of(out), bits_of(expected));  // exact copy
  }
}

TEST(Embedding, WidensF16Rows) {
  SeededRng rng;
  for (const Shape& s : kShapes) {
    std::vector<uint16_t> table;
    for (float v : table_values(rng, s.table_rows * s.cols)) table.push_back(quant::f32_to_f16(v));
    const std::vector<int32_t> ids = random_ids(rng, s.count, s.table_rows);
    std::vector<float> expected;
    for (int32_t id : ids) {
      for (int64_t c = 0; c < s.cols; ++c) expected.push_back(quant::f16_to_f32(table[id * s.cols + c]));
    }
    std::vector<float> out = poisoned(s.count * s.cols);
    embedding(table.data(), ElementType::f16, s.cols, ids.data(), s.count, out.data());
    EXPECT_EQ(bits_of(out), bits_of(expected));  // exact: widening f16 is lossless
  }
}

TEST(Embedding, WidensBf16Rows) {
  SeededRng rng;
  for (const Shape& s : kShapes) {
    std::vector<uint16_t> table;
    for (float v : table_values(rng, s.table_rows * s.cols)) table.push_back(quant::f32_to_bf16(v));
    const std::vector<int32_t> ids = random_ids(rng, s.count, s.table_rows);
    std::vector<float> expected;
    for (int32_t id : ids) {
      for (int64_t c = 0; c < s.cols; ++c) expected.push_back(quant::bf16_to_f32(table[id * s.cols + c]));
    }
    std::vector<float> out = poisoned(s.count * s.cols);
    embedding(table.data(), ElementType::bf16, s.cols, ids.data(), s.count, out.data());
    EXPECT_EQ(bits_of(out), bits_of(expected));  // exact: widening bf16 is lossless
  }
}

}  // namespace
}  // namespace ember::cpu
